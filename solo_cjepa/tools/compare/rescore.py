"""``python -m solo_cjepa.compare rescore DIR``: a comparison's offline evaluation again, from each
finished run's checkpoint, with this version's protocol (such as the low-shot probes), and the
floors again from the runs' configs; with ``--finetune`` each run's fine-tuning too. The runs'
records are rewritten and the report rebuilt; a run without a kept checkpoint keeps its record.
"""

import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from solo_cjepa.launch.checkpoints.loading import newest_checkpoint, run_cfg
from solo_cjepa.tools.compare.collect import rebuild
from solo_cjepa.tools.compare.finetuning import FineTuning, finetune
from solo_cjepa.tools.compare.pipeline import (
    finetuned_text,
    finetuning_setting,
    floor_rows,
    offline_numbers,
    scores_text,
)
from solo_cjepa.tools.compare.presets import folder_name
from solo_cjepa.tools.compare.records import (
    load_outcome,
    load_plan,
    save_floors,
    save_outcome,
    save_plan,
)
from solo_cjepa.tools.compare.report import Report
from solo_cjepa.tools.compare.runner import ProgressLine, format_duration


def _rescore_floors(out: Path, plan: dict, stream: TextIO) -> None:
    """The floors of ``floor_rows`` on the configs of the plan's runs, which the comparison built
    them from (their ``args.json``: no checkpoint needed); kept as they are without them."""
    specs = plan["runs"]
    cfgs = []
    for spec in specs:
        run_dir = load_outcome(out, spec).run_dir
        if run_dir is not None and (run_dir / "args.json").is_file():
            cfgs.append(run_cfg(run_dir))
    if not cfgs:
        print(f"[floors] kept: {folder_name(specs[0])} has no args.json", file=stream, flush=True)
        return
    seeds = list(dict.fromkeys(spec.seed for spec in specs))
    rows, _ = floor_rows(cfgs, None if seeds == [None] else seeds)
    save_floors(out, rows)
    for row in rows:
        seed = f" seed {row['seed']}" if row.get("seed") is not None else ""
        print(f"[floors] {row['method']}{seed}: {scores_text(row) or row['status']}", file=stream)


def rescore(
    out: Path, finetuning: Optional[FineTuning] = None, stream: Optional[TextIO] = None
) -> Report:
    """Re-runs the offline evaluation (and with ``finetuning`` the fine-tuning) of every run in
    ``out`` that finished and kept its checkpoint, then the floors; rewrites the records and the
    report, and returns the report."""
    stream = stream or sys.stdout
    start = time.monotonic()
    plan = load_plan(out)
    specs = plan["runs"]
    for i, spec in enumerate(specs):
        label = spec.name + (f" seed {spec.seed}" if spec.seed is not None else "")
        line = ProgressLine(f"[{i + 1}/{len(specs)}] {label}:", stream)
        outcome = load_outcome(out, spec)
        if not outcome.status.startswith("ok") or outcome.run_dir is None:
            line.finish(f"kept as it is: {outcome.status}")
            continue
        if newest_checkpoint(outcome.run_dir) is None:
            line.finish(f"kept as it is: no checkpoint in {outcome.run_dir}")
            continue
        line.update("offline evaluation")
        try:
            outcome.offline = offline_numbers(outcome.run_dir)
        except Exception as err:  # the old record stays
            line.finish(f"kept as it is: offline evaluation failed: {type(err).__name__}: {err}")
            continue
        outcome.status, outcome.error = "ok", ""
        folder = out / folder_name(spec)
        if finetuning is not None:
            save_outcome(folder, outcome)
            line.update("fine-tuning")
            outcome.finetune = finetune(finetuning, spec, folder, outcome.run_dir, line)
        save_outcome(folder, outcome)
        line.finish(f"rescored, {scores_text(outcome.offline)}{finetuned_text(outcome.finetune)}")
    print("[floors] evaluating raw pixels and the untrained encoder again", file=stream, flush=True)
    _rescore_floors(out, plan, stream)
    settings = dict(plan["settings"])
    settings["rescored"] = "offline evaluation re-run from the checkpoints (`rescore`)"
    if finetuning is not None:
        settings["fine-tuning"] = finetuning_setting(finetuning)
    save_plan(out, plan["title"], settings, specs)
    report = rebuild(out)
    took = format_duration(time.monotonic() - start)
    print(f"[done] {took}: {out / 'report.md'}", file=stream, flush=True)
    return report
