"""A comparison's runs as a Hydra multirun over job indices, so Hydra's launcher plugins place
them: ``joblib`` (hydra-joblib-launcher: several at once here), ``slurm`` (hydra-submitit-launcher:
one job per run) or ``submitit_local`` (submitit's local executor, for tests). Each job trains,
evaluates and records one run in its folder, exactly as the local launcher does.
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import List, Sequence, TextIO

import hydra
from omegaconf import DictConfig

from solo_cjepa.errors import ConfigError
from solo_cjepa.tools.compare.finetuning import FineTuning
from solo_cjepa.tools.compare.launchers import Job, Launcher
from solo_cjepa.tools.compare.runner import ProgressLine, RunSpec

JOBS = "jobs.json"
# --launcher name -> (Hydra launcher config, the package that provides it)
PLUGINS = {
    "joblib": ("joblib", "hydra-joblib-launcher"),
    "slurm": ("submitit_slurm", "hydra-submitit-launcher"),
    "submitit_local": ("submitit_local", "hydra-submitit-launcher"),
}


def launcher_overrides(launcher: Launcher) -> List[str]:
    """Hydra overrides that pick and configure the launcher plugin."""
    config, package = PLUGINS[launcher.name]
    module = "hydra_plugins." + package.replace("-", "_")
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(
            f"--launcher {launcher.name} needs {package}: pip install {package} "
            "(or pip install -e '.[launchers]')"
        ) from None
    overrides = [f"hydra/launcher={config}"]
    if launcher.name == "joblib":
        overrides += [f"hydra.launcher.n_jobs={launcher.n_jobs}"] if launcher.n_jobs else []
    if launcher.name == "slurm":
        if launcher.partition:
            overrides.append(f"hydra.launcher.partition={launcher.partition}")
        overrides += [
            f"hydra.launcher.nodes={launcher.nodes}",
            # one task per GPU: Lightning's DDP takes its ranks from SLURM
            f"hydra.launcher.tasks_per_node={max(launcher.gpus, 1)}",
        ]
        overrides += [f"hydra.launcher.gpus_per_node={launcher.gpus}"] if launcher.gpus else []
        if launcher.time_limit_min:
            overrides.append(f"hydra.launcher.timeout_min={launcher.time_limit_min}")
    overrides += [f"hydra.launcher.{setting}" for setting in launcher.extra]
    return overrides


def launch(launcher: Launcher, jobs: Sequence[Job], out: Path, stream: TextIO) -> None:
    """Writes the jobs to ``out/jobs.json`` and runs them as one Hydra multirun (in a
    subprocess: Hydra's state is global); returns when the launcher has seen them all end."""
    records = [{**asdict(job), "spec": asdict(job.spec), "folder": str(job.folder)} for job in jobs]
    (out / JOBS).write_text(json.dumps(records, indent=1))
    command = [
        sys.executable, "-m", "solo_cjepa.tools.compare.hydra_jobs", "--multirun",
        *launcher_overrides(launcher),
        f"hydra.sweep.dir={out / '.hydra'}",
        f"+jobs_file={out / JOBS}",
        "+job=" + ",".join(str(i) for i in range(len(jobs))),
    ]  # fmt: skip
    print(f"[launcher] {launcher.describe()}: {len(jobs)} runs", file=stream, flush=True)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:  # the jobs' progress lines, as they come
            stream.write(line)
            stream.flush()
    if proc.returncode != 0:
        print(
            f"[launcher] exited with {proc.returncode}; runs that finished are in the report",
            file=stream,
            flush=True,
        )


def run_job(job: Job) -> None:
    """One run in its job. With several tasks (SLURM, a GPU each) every task trains as one DDP
    rank; rank 0 also evaluates and writes the record."""
    from solo_cjepa.tools.compare.pipeline import execute

    rank = int(os.environ.get("SLURM_PROCID", "0"))
    if rank > 0:
        log = job.folder / f"train.rank{rank}.log"
        job.folder.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            subprocess.run(list(job.command), stdout=f, stderr=subprocess.STDOUT, check=False)
        return
    execute(job, ProgressLine(f"[{job.label}]"))


@hydra.main(version_base="1.2", config_path=None)
def main(cfg: DictConfig) -> None:
    record = json.loads(Path(cfg.jobs_file).read_text())[cfg.job]
    spec = RunSpec(**{**record["spec"], "overrides": tuple(record["spec"]["overrides"])})
    finetuning = record.get("finetuning")
    finetuning = FineTuning(**finetuning) if finetuning else None
    run_job(Job(spec, record["command"], Path(record["folder"]), record["max_time_s"], finetuning))


if __name__ == "__main__":
    main()
