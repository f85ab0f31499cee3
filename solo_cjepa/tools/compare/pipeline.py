"""A comparison end to end: checks every run's config, evaluates the floors (raw pixels, random
init), hands the runs (each entry once per seed) to the launcher, where each trains, evaluates and
records itself, and builds the report from those records, so a failed, interrupted or unfinished
run loses nothing that was already done.
"""

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

import torch
from omegaconf import DictConfig

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.checkpoints.loading import encoder_of, load_method
from solo_cjepa.launch.data.holdout import scored_split
from solo_cjepa.launch.run import build_method, untrained_encoder
from solo_cjepa.tools.compare.collect import build_report, rebuild
from solo_cjepa.tools.compare.configs import compose_run, config_dir
from solo_cjepa.tools.compare.finetuning import FineTuning, finetune
from solo_cjepa.tools.compare.launchers import Job, Launcher, dispatch
from solo_cjepa.tools.compare.presets import folder_name, with_seeds
from solo_cjepa.tools.compare.records import save_floors, save_outcome, save_plan
from solo_cjepa.tools.compare.report import (
    ENCODERS,
    Report,
    encoder_numbers,
    floor_numbers,
    run_row,
    write_report,
)
from solo_cjepa.tools.compare.runner import (
    ProgressLine,
    RunOutcome,
    RunSpec,
    budget_overrides,
    format_duration,
    run,
)
from solo_cjepa.tools.offline_eval import eval_loaders, evaluate, flat_pixels, offline_encoders

# Every run: a CSV log and a checkpoint in its own folder, online kNN on, no sanity validation
# (it costs time and measures nothing), no progress bar in the log file.
COMMON_OVERRIDES = (
    "++wandb.enabled=False",
    "++auto_resume.enabled=False",
    "++resume_from_checkpoint=null",
    "++checkpoint.enabled=True",
    "++checkpoint.frequency=1",
    "++knn_eval.enabled=True",
    "++knn_eval.distance_func=cosine",
    "++num_sanity_val_steps=0",
    "++enable_progress_bar=False",
)
# --total-minutes: what a run costs besides its training budget, in units of the random-init
# floor's measured evaluation: startup, the validation Lightning runs after max_time (measured at
# up to half an offline evaluation: two encoders and the kNN on the validation set) and the run's
# own offline evaluation of each of its encoders; plus a safety margin on the whole.
STARTUP_S = 45.0
FINAL_VALIDATION_SHARE = 0.5
SAFETY = 0.92


@dataclass
class Plan:
    dataset: str
    specs: Sequence[RunSpec]
    out: Path
    epochs: Optional[int] = None
    minutes: Optional[float] = None
    total_minutes: Optional[float] = None
    overrides: Sequence[str] = ()  # a preset's, then the user's
    seeds: Optional[Sequence[int]] = None  # None: once, with the configs' seed
    launcher: Launcher = field(default_factory=Launcher)
    finetuning: Optional[FineTuning] = None  # --finetune: after each run's pretraining
    title: str = "Side-by-side comparison"
    command: str = ""


def per_run_minutes(
    total_minutes: float, elapsed_s: float, eval_s: float, encoders: Sequence[int]
) -> float:
    """The equal training budget (``max_time``) that fits one run per entry of ``encoders`` into
    what is left of ``total_minutes``, each also costing startup, a final validation and an
    evaluation of each of its ``encoders[i]`` encoders."""
    runs = len(encoders)
    overhead = sum(STARTUP_S + (n + FINAL_VALIDATION_SHARE) * eval_s for n in encoders)
    left = total_minutes * 60 * SAFETY - elapsed_s - overhead
    if left < 60 * runs:
        raise ConfigError(
            f"--total-minutes {total_minutes:g} leaves {max(left, 0) / 60:.1f} min to train {runs} "
            f"runs (an offline evaluation takes {eval_s:.0f} s here); give more minutes or fewer "
            "--methods, or set --minutes per run"
        )
    return left / runs / 60


def scores_text(numbers: Dict[str, object]) -> str:
    """Each encoder's offline top-1s, once for encoders with the same numbers (a floor's)."""
    encoders_of: Dict[str, List[str]] = {}
    for e in ENCODERS:
        if f"offline_logreg_top1_{e}" in numbers:
            logreg, knn = numbers[f"offline_logreg_top1_{e}"], numbers[f"offline_knn_top1_{e}"]
            encoders_of.setdefault(f"{logreg:.1f} / {knn:.1f}", []).append(e)
    scores = [f"{top1} ({', '.join(encoders)})" for top1, encoders in encoders_of.items()]
    return f"offline logreg / kNN {'; '.join(scores)}" if scores else ""


def finetuned_text(numbers: Dict[str, object]) -> str:
    if "finetune_top1" in numbers:
        return f", fine-tuned {numbers['finetune_top1']:.1f} ({numbers['finetune_encoder']})"
    return f", fine-tuning {numbers['finetune_error']}" if "finetune_error" in numbers else ""


def _timed_evaluation(features, loaders) -> Tuple[Dict[str, float], float]:
    start = time.monotonic()
    result = evaluate(features, loaders)
    return result, time.monotonic() - start


def floor_rows(
    cfgs: Sequence[DictConfig], seeds: Optional[Sequence[int]]
) -> Tuple[List[Dict[str, object]], Optional[float]]:
    """Rows for raw pixels (the first config's data) and for the untrained ViT of each SSL method
    among ``cfgs`` (its first config's initial weights, same seed as its launcher), and the
    seconds one ViT evaluation took. With ``seeds``, one row per seed: each seed's runs start
    from that seed's untrained ViT. Methods build their ViTs differently (C-JEPA's fixed
    positions), so with several methods each gets its own, named after it. A floor's numbers
    count for both encoders."""
    first_of = {}
    for cfg in cfgs:
        first_of.setdefault(cfg.method, cfg)
    split = scored_split(cfgs[0].data)
    eval_s = None
    try:
        loaders = eval_loaders(cfgs[0])
        pixels, pixel_s = _timed_evaluation(flat_pixels, loaders)
        rows = [run_row("raw pixels", "floor", pixel_s, split=split, **floor_numbers(pixels))]
        for method, cfg in first_of.items():
            name = f"random init ({cfg.backbone.name}" + (
                f", {method})" if len(first_of) > 1 else ")"
            )
            for seed in seeds or [None]:
                seeded = cfg.copy()
                seeded.seed = cfg.seed if seed is None else seed
                # a momentum method's target encoder starts as a copy of the context encoder,
                # so one evaluation is the floor of both
                random_init, eval_s = _timed_evaluation(untrained_encoder(seeded), loaders)
                numbers = {"ssl_method": method, "split": split, **floor_numbers(random_init)}
                rows.append(run_row(name, "floor", eval_s, seed, **numbers))
    except Exception as err:  # a floor must not stop the comparison
        failed = f"failed: {type(err).__name__}: {err}"
        return [run_row("raw pixels", failed, None), run_row("random init", failed, None)], None
    return rows, eval_s


def offline_numbers(run_dir: Path) -> Dict[str, object]:
    """The run's record of its offline evaluation: every encoder's numbers, the method that
    trained it (which random-init floor it started from) and the split they were scored on."""
    model, cfg = load_method(run_dir)
    if torch.cuda.is_available():
        model = model.cuda()
    loaders = eval_loaders(cfg)
    numbers = {"ssl_method": cfg.method, "split": scored_split(cfg.data)}
    for encoder in offline_encoders(cfg.method):
        numbers.update(encoder_numbers(encoder, evaluate(encoder_of(model, encoder), loaders)))
    return numbers


def execute(job: Job, line: ProgressLine) -> RunOutcome:
    """One run end to end, wherever a launcher put it: training (:func:`runner.run`), the offline
    evaluation of its checkpoint, with ``--finetune`` its fine-tuning, and its record in its
    folder for the report."""
    outcome = run(job.spec, job.command, job.folder, job.max_time_s, line)
    if outcome.ok:
        line.update(f"trained in {format_duration(outcome.wall_time_s)}; offline evaluation")
        try:
            outcome.offline = offline_numbers(outcome.run_dir)
        except Exception as err:  # the run's metrics still make a row
            outcome.status = "ok; offline evaluation failed"
            outcome.error = f"{type(err).__name__}: {err}"
    if job.finetuning is not None and outcome.run_dir is not None and outcome.status == "ok":
        save_outcome(job.folder, outcome)  # the frozen numbers are kept whatever follows
        line.update("fine-tuning")
        outcome.finetune = finetune(job.finetuning, job.spec, job.folder, outcome.run_dir, line)
    save_outcome(job.folder, outcome)
    done = f"{outcome.status} in {format_duration(outcome.wall_time_s)}"
    done += f", {scores_text(outcome.offline)}" if outcome.offline else ""
    done += finetuned_text(outcome.finetune)
    line.finish(done + (f": {outcome.error}" if outcome.error else ""))
    return outcome


def finetuning_setting(finetuning: Optional[FineTuning]) -> str:
    if finetuning is None:
        return "none"
    epochs = "its max_epochs" if finetuning.epochs is None else f"{finetuning.epochs} epochs"
    overrides = " ".join(f"`{o}`" for o in finetuning.overrides)
    config = f"{Path(finetuning.config_dir).name}/finetune.yaml"
    return f"{config}, {epochs}" + (f", {overrides}" if overrides else "")


def _settings(plan: Plan, minutes: Optional[float]) -> Dict[str, str]:
    budget = [f"{plan.epochs} epochs" if plan.epochs is not None else None]
    budget.append(
        f"{minutes:.2f} min of training (Lightning max_time)" if minutes is not None else None
    )
    device = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
    )
    return {
        "dataset": plan.dataset,
        "budget per run": " and ".join(b for b in budget if b) or "the configs' max_epochs",
        "runs": ", ".join(spec.name for spec in plan.specs),
        "seeds": " ".join(map(str, plan.seeds)) if plan.seeds else "the configs' seed",
        "launcher": plan.launcher.describe(),
        "overrides": " ".join(f"`{o}`" for o in plan.overrides) or "none",
        "fine-tuning": finetuning_setting(plan.finetuning),
        "command": f"`{plan.command}`" if plan.command else "",
        "machine": f"{device}, torch {torch.__version__}",
    }


def run_comparison(plan: Plan, stream: Optional[TextIO] = None) -> Report:
    """Runs ``plan`` and writes ``report.md``, ``report.csv`` and the plots into ``plan.out``;
    progress goes to ``stream`` (default: standard output)."""
    stream = stream or sys.stdout
    start = time.monotonic()
    plan.out.mkdir(parents=True, exist_ok=True)
    specs = with_seeds(plan.specs, plan.seeds)
    folders = [plan.out.resolve() / folder_name(spec) for spec in specs]

    def overrides(spec: RunSpec, folder: Path, minutes: Optional[float]) -> List[str]:
        budget = budget_overrides(plan.epochs, minutes)
        seed = [f"++seed={spec.seed}"] if spec.seed is not None else []
        return [
            *COMMON_OVERRIDES,
            f"++checkpoint.dir={folder}",
            *budget,
            *seed,
            *spec.overrides,
            *plan.overrides,
        ]

    cfgs = [
        compose_run(plan.dataset, spec.config_name, overrides(spec, folder, plan.minutes))
        for spec, folder in zip(specs, folders)
    ]
    checked = set()
    for spec, cfg in zip(specs, cfgs):  # a setting that cannot work stops it before it starts
        if spec.name not in checked:
            checked.add(spec.name)
            build_method(cfg)
    print(
        f"[floors] evaluating raw pixels and each method's untrained {cfgs[0].backbone.name}",
        file=stream,
        flush=True,
    )
    floors, eval_s = floor_rows(cfgs, plan.seeds)
    save_floors(plan.out, floors)
    for row in floors:
        seed = f" seed {row['seed']}" if row.get("seed") is not None else ""
        print(
            f"[floors] {row['method']}{seed}: {scores_text(row) or row['status']}",
            file=stream,
            flush=True,
        )

    minutes = plan.minutes
    if minutes is None and plan.total_minutes is not None:
        if eval_s is None:
            raise ConfigError(
                "--total-minutes needs the random-init evaluation, which failed above"
            )
        encoders = [len(offline_encoders(cfg.method)) for cfg in cfgs]
        minutes = per_run_minutes(plan.total_minutes, time.monotonic() - start, eval_s, encoders)
        print(f"[budget] {minutes:.2f} min of training per run", file=stream, flush=True)
    save_plan(plan.out, plan.title, _settings(plan, minutes), specs)
    for folder in folders:  # running again into DIR replaces its runs
        shutil.rmtree(folder, ignore_errors=True)

    jobs = [
        Job(
            spec,
            [
                sys.executable,
                "-m",
                "solo_cjepa.tools.compare.train",
                "--config-path",
                str(config_dir(plan.dataset)),
                "--config-name",
                f"{spec.config_name}.yaml",
                *overrides(spec, folder, minutes),
                *plan.launcher.training_overrides(),
            ],
            folder,
            minutes and minutes * 60,
            plan.finetuning,
        )  # fmt: skip
        for spec, folder in zip(specs, folders)
    ]
    try:
        dispatch(plan.launcher, jobs, plan.out.resolve(), stream, lambda: rebuild(plan.out))
    except KeyboardInterrupt:
        rebuild(plan.out)
        raise
    report = build_report(plan.out, {"total time": format_duration(time.monotonic() - start)})
    write_report(report, plan.out)
    print(
        f"[done] {format_duration(time.monotonic() - start)}: {plan.out / 'report.md'}",
        file=stream,
        flush=True,
    )
    return report
