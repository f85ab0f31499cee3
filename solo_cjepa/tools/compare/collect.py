"""Rebuilds a comparison's report from its folder: the plan, the floors and the record of every run
that finished, whichever launcher ran them (``python -m solo_cjepa.compare report DIR``). A run
with no record yet or a failed one is a marked row.
"""

from pathlib import Path
from typing import List

from solo_cjepa.tools.compare.metrics import Rows, drop_partial_epoch_knn, read_metrics, summary
from solo_cjepa.tools.compare.plots import write_plots
from solo_cjepa.tools.compare.presets import PAIRED_DIFFERENCES, folder_name
from solo_cjepa.tools.compare.records import load_floors, load_outcome, load_plan
from solo_cjepa.tools.compare.report import Report, entries, run_row, write_report
from solo_cjepa.tools.compare.runner import RunOutcome


def _metrics(outcome: RunOutcome) -> Rows:
    if outcome.run_dir is None or not (outcome.run_dir / "metrics.csv").is_file():
        return []
    return drop_partial_epoch_knn(read_metrics(outcome.run_dir / "metrics.csv"))


def build_report(out: Path, extra_settings=None) -> Report:
    """The report of the comparison in ``out`` as far as its runs have finished."""
    plan = load_plan(out)
    report = Report(plan["title"], {**plan["settings"], **(extra_settings or {})})
    curves: List = []
    for spec in plan["runs"]:
        outcome = load_outcome(out, spec)
        rows = _metrics(outcome)
        if rows:
            curves.append((spec.name, rows))
        numbers = {**summary(rows), **outcome.offline, **outcome.finetune}
        if "finetune_encoder" in numbers:  # the frozen number to set the fine-tuned one against
            frozen = f"offline_logreg_top1_{numbers['finetune_encoder']}"
            numbers["frozen_logreg_top1"] = numbers.get(frozen)
        report.rows.append(
            run_row(spec.name, outcome.status, outcome.wall_time_s or None, spec.seed, **numbers)
        )
        if "finetune_error" in outcome.finetune:
            seed = f" seed {spec.seed}" if spec.seed is not None else ""
            report.failures.append(
                f"**{spec.name}**{seed} fine-tuning {outcome.finetune['finetune_error']} "
                f"(log: `{out / folder_name(spec) / 'finetune' / 'train.log'}`)"
            )
        if outcome.status != "ok":
            log = f" (log: `{outcome.log_path}`)" if outcome.log_path else ""
            seed = f" seed {spec.seed}" if spec.seed is not None else ""
            report.failures.append(
                f"**{spec.name}**{seed} {outcome.status}"
                + (f": {outcome.error}" if outcome.error else "")
                + log
            )
    names = entries(report.rows)
    report.pairs = [pair for pair in PAIRED_DIFFERENCES if all(name in names for name in pair)]
    floors = load_floors(out)
    report.rows += floors
    # Per-seed untrained ViTs: what each seed's runs of the method they were built for started
    # from (another method builds its ViT otherwise, e.g. without C-JEPA's fixed positions)
    for floor in entries([row for row in floors if row.get("seed") is not None]):
        method = next(row.get("ssl_method") for row in floors if row["method"] == floor)
        report.pairs += [
            (name, floor)
            for name, runs in names.items()
            if method is not None and any(row.get("ssl_method") == method for row in runs)
        ]
    grouped = {}
    for name, rows in curves:
        grouped.setdefault(name, []).append(rows)
    report.plots = write_plots(list(grouped.items()), out) if grouped else ()
    return report


def rebuild(out: Path) -> Report:
    """Writes ``report.md``, ``report.csv`` and the plots of ``out`` from what is on disk."""
    report = build_report(out)
    write_report(report, out)
    return report
