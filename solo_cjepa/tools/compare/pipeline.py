"""A comparison end to end: checks every run's config, evaluates the floors (raw pixels, random
init), trains and evaluates each run in turn, and rewrites the report after each step, so a failed
or interrupted run loses nothing that was already done.
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

import torch
from omegaconf import DictConfig

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.checkpoints.loading import encoder_of, load_method
from solo_cjepa.launch.run import build_method
from solo_cjepa.tools.compare.configs import compose_run, config_dir
from solo_cjepa.tools.compare.metrics import Rows, drop_partial_epoch_knn, read_metrics, summary
from solo_cjepa.tools.compare.plots import write_plots
from solo_cjepa.tools.compare.presets import folder_name
from solo_cjepa.tools.compare.report import Report, run_row, write_report
from solo_cjepa.tools.compare.runner import (
    ProgressLine,
    RunOutcome,
    RunSpec,
    budget_overrides,
    format_duration,
    run,
)
from solo_cjepa.tools.offline_eval import eval_loaders, evaluate, evaluated_encoder, flat_pixels

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
# own offline evaluation; plus a safety margin on the whole.
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
    title: str = "Side-by-side comparison"
    command: str = ""


def per_run_minutes(total_minutes: float, elapsed_s: float, eval_s: float, runs: int) -> float:
    """The equal training budget (``max_time``) that fits ``runs`` runs into what is left of
    ``total_minutes``, each also costing startup, a final validation and an evaluation."""
    per_run_overhead = STARTUP_S + (1 + FINAL_VALIDATION_SHARE) * eval_s
    left = total_minutes * 60 * SAFETY - elapsed_s - runs * per_run_overhead
    if left < 60 * runs:
        raise ConfigError(
            f"--total-minutes {total_minutes:g} leaves {max(left, 0) / 60:.1f} min to train {runs} "
            f"runs (an offline evaluation takes {eval_s:.0f} s here); give more minutes or fewer "
            "--methods, or set --minutes per run"
        )
    return left / runs / 60


def _scores(numbers: Dict[str, object]) -> str:
    if "offline_logreg_top1" not in numbers:
        return ""
    logreg, knn = numbers["offline_logreg_top1"], numbers["offline_knn_top1"]
    return f"offline logreg {logreg:.1f} / kNN {knn:.1f}"


def _timed_evaluation(features, loaders) -> Tuple[Dict[str, float], float]:
    start = time.monotonic()
    result = evaluate(features, loaders)
    return result, time.monotonic() - start


def _floors(cfg: DictConfig) -> Tuple[List[Dict[str, object]], Optional[float]]:
    """Rows for raw pixels and the untrained ViT (the first run's initial weights: same seed as
    its launcher), and the seconds the ViT's evaluation took."""
    encoder = evaluated_encoder(cfg.method)
    try:
        loaders = eval_loaders(cfg)
        pixels, pixel_s = _timed_evaluation(flat_pixels, loaders)
        torch.manual_seed(cfg.seed)
        untrained = encoder_of(build_method(cfg), encoder)
        random_init, eval_s = _timed_evaluation(untrained, loaders)
    except Exception as err:  # a floor must not stop the comparison
        failed = f"failed: {type(err).__name__}: {err}"
        return [run_row("raw pixels", failed, None), run_row("random init", failed, None)], None
    return [
        run_row("raw pixels", "floor", pixel_s, encoder="pixels", **pixels),
        run_row(
            f"random init ({cfg.backbone.name})", "floor", eval_s, encoder=encoder, **random_init
        ),
    ], eval_s


def _offline(run_dir: Path) -> Dict[str, object]:
    model, cfg = load_method(run_dir)
    encoder = evaluated_encoder(cfg.method)
    return {"encoder": encoder, **evaluate(encoder_of(model, encoder), eval_loaders(cfg))}


def _metrics(outcome: RunOutcome) -> Rows:
    if outcome.run_dir is None or not (outcome.run_dir / "metrics.csv").is_file():
        return []
    return drop_partial_epoch_knn(read_metrics(outcome.run_dir / "metrics.csv"))


def _report(plan: Plan, settings: Dict[str, str], outcomes: Sequence[RunOutcome], floors) -> Report:
    report = Report(plan.title, settings)
    runs = []
    for outcome in outcomes:
        rows = _metrics(outcome)
        if rows:
            runs.append((outcome.spec.name, rows))
        numbers = {**summary(rows), **outcome.offline}
        report.rows.append(
            run_row(outcome.spec.name, outcome.status, outcome.wall_time_s or None, **numbers)
        )
        if outcome.error:
            log = f" (log: `{outcome.log_path}`)" if outcome.log_path else ""
            report.failures.append(
                f"**{outcome.spec.name}** {outcome.status}: {outcome.error}{log}"
            )
    report.rows += floors
    report.plots = write_plots(runs, plan.out) if runs else ()
    return report


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
        "overrides": " ".join(f"`{o}`" for o in plan.overrides) or "none",
        "command": f"`{plan.command}`" if plan.command else "",
        "machine": f"{device}, torch {torch.__version__}",
    }


def run_comparison(plan: Plan, stream: Optional[TextIO] = None) -> Report:
    """Runs ``plan`` and writes ``report.md``, ``report.csv`` and the plots into ``plan.out``;
    progress goes to ``stream`` (default: standard output)."""
    stream = stream or sys.stdout
    start = time.monotonic()
    plan.out.mkdir(parents=True, exist_ok=True)
    folders = [plan.out.resolve() / folder_name(spec) for spec in plan.specs]

    def overrides(spec: RunSpec, folder: Path, minutes: Optional[float]) -> List[str]:
        budget = budget_overrides(plan.epochs, minutes)
        return [
            *COMMON_OVERRIDES,
            f"++checkpoint.dir={folder}",
            *budget,
            *spec.overrides,
            *plan.overrides,
        ]

    cfgs = [
        compose_run(plan.dataset, spec.config_name, overrides(spec, folder, plan.minutes))
        for spec, folder in zip(plan.specs, folders)
    ]
    for cfg in cfgs:  # a method setting that cannot work stops the comparison before it starts
        build_method(cfg)
    print(
        f"[floors] evaluating raw pixels and the untrained {cfgs[0].backbone.name}",
        file=stream,
        flush=True,
    )
    floors, eval_s = _floors(cfgs[0])
    for row in floors:
        print(f"[floors] {row['method']}: {_scores(row) or row['status']}", file=stream, flush=True)

    minutes = plan.minutes
    if minutes is None and plan.total_minutes is not None:
        if eval_s is None:
            raise ConfigError(
                "--total-minutes needs the random-init evaluation, which failed above"
            )
        minutes = per_run_minutes(
            plan.total_minutes, time.monotonic() - start, eval_s, len(plan.specs)
        )
        print(f"[budget] {minutes:.2f} min of training per run", file=stream, flush=True)
    settings = _settings(plan, minutes)

    outcomes = [RunOutcome(spec, "not run") for spec in plan.specs]
    try:
        for i, (spec, folder) in enumerate(zip(plan.specs, folders)):
            line = ProgressLine(f"[{i + 1}/{len(plan.specs)}] {spec.name}:", stream)
            command = [
                sys.executable, "-m", "solo_cjepa.tools.compare.train",
                "--config-path", str(config_dir(plan.dataset)),
                "--config-name", f"{spec.config_name}.yaml",
                *overrides(spec, folder, minutes),
            ]  # fmt: skip
            outcome = outcomes[i] = run(spec, command, folder, minutes and minutes * 60, line)
            if outcome.ok:
                line.update(
                    f"trained in {format_duration(outcome.wall_time_s)}; offline evaluation"
                )
                try:
                    outcome.offline = _offline(outcome.run_dir)
                except Exception as err:  # the run's metrics still make a row
                    outcome.status = "ok; offline evaluation failed"
                    outcome.error = f"{type(err).__name__}: {err}"
            done = f"{outcome.status} in {format_duration(outcome.wall_time_s)}"
            done += f", {_scores(outcome.offline)}" if outcome.offline else ""
            line.finish(done + (f": {outcome.error}" if outcome.error else ""))
            write_report(_report(plan, settings, outcomes, floors), plan.out)
    except KeyboardInterrupt:
        outcomes[i].status = "interrupted"
        write_report(_report(plan, settings, outcomes, floors), plan.out)
        raise
    settings["total time"] = format_duration(time.monotonic() - start)
    report = _report(plan, settings, outcomes, floors)
    write_report(report, plan.out)
    print(
        f"[done] {format_duration(time.monotonic() - start)}: {plan.out / 'report.md'}",
        file=stream,
        flush=True,
    )
    return report
