"""Where a comparison's runs go: one after another here (``local``), or through a Hydra launcher
plugin, ``joblib`` (several at once on this machine) or ``slurm`` (one submitit job per run). Each
run trains, evaluates and records itself in its own folder; the report is then read from there.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, TextIO

from solo_cjepa.tools.compare.finetuning import FineTuning
from solo_cjepa.tools.compare.runner import ProgressLine, RunSpec

# submitit_local: the slurm path on this machine (submitit's local executor), to try it out
LAUNCHERS = ("local", "joblib", "slurm", "submitit_local")


@dataclass(frozen=True)
class Job:
    """One run: its spec, the training command, its folder, its time budget (seconds) and, with
    ``--finetune``, the fine-tuning that follows."""

    spec: RunSpec
    command: Sequence[str]
    folder: Path
    max_time_s: Optional[float] = None
    finetuning: Optional[FineTuning] = None

    @property
    def label(self) -> str:
        return self.spec.name + (f" seed {self.spec.seed}" if self.spec.seed is not None else "")


@dataclass(frozen=True)
class Launcher:
    """``name`` is one of :data:`LAUNCHERS`; ``n_jobs``: runs at once (joblib); the SLURM
    settings: ``partition``, GPUs per run (``gpus``, one DDP process each), ``nodes`` per run,
    ``time_limit_min`` per job, and any further ``hydra.launcher.*`` overrides in ``extra``."""

    name: str = "local"
    n_jobs: Optional[int] = None
    partition: Optional[str] = None
    gpus: int = 0
    nodes: int = 1
    time_limit_min: Optional[int] = None
    extra: Sequence[str] = ()

    def describe(self) -> str:
        if self.name == "local":
            return "local (one run after another)"
        if self.name == "joblib":
            return f"joblib ({self.n_jobs or 'all cores'} at once)"
        if self.name == "submitit_local":
            return "submitit_local (submitit's local executor)"
        parts = [f"partition {self.partition}" if self.partition else "default partition"]
        parts += [f"{self.gpus} GPU(s) x {self.nodes} node(s) per run"]
        parts += [f"{self.time_limit_min} min limit"] if self.time_limit_min else []
        return f"slurm ({', '.join(parts)})"

    def training_overrides(self) -> List[str]:
        """What a run's training needs from its job's resources: DDP over the job's GPUs."""
        if self.name != "slurm" or self.gpus == 0:
            return []
        return [f"++devices={self.gpus}", f"++num_nodes={self.nodes}", "++strategy=ddp"]


def run_locally(jobs: Sequence[Job], stream: TextIO, after_each: Callable[[], object]) -> None:
    """Today's behaviour: the runs one after another in this process's subprocesses, a progress
    line each, the report rewritten after each."""
    from solo_cjepa.tools.compare.pipeline import execute

    for i, job in enumerate(jobs):
        line = ProgressLine(f"[{i + 1}/{len(jobs)}] {job.label}:", stream)
        execute(job, line)
        after_each()


def dispatch(
    launcher: Launcher,
    jobs: Sequence[Job],
    out: Path,
    stream: Optional[TextIO] = None,
    after_each: Callable[[], object] = lambda: None,
) -> None:
    """Runs ``jobs`` (of the comparison in ``out``) with ``launcher``; returns when all ended.
    ``after_each`` follows each run of the local launcher (the others report at the end)."""
    stream = stream or sys.stdout
    if launcher.name == "local":
        run_locally(jobs, stream, after_each)
    else:
        from solo_cjepa.tools.compare.hydra_jobs import launch

        launch(launcher, jobs, out, stream)
