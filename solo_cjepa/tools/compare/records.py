"""What a comparison leaves on disk for its report: ``plan.json`` (the runs asked for and the
settings), ``floors.json`` and one ``run.json`` per finished run in its folder. The report is
rebuilt from these alone, whichever launcher ran the runs and whether or not they all finished;
records of earlier versions are read as this one writes them.
"""

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from solo_cjepa.errors import ConfigError
from solo_cjepa.tools.compare.presets import folder_name
from solo_cjepa.tools.compare.report import OFFLINE_METRICS, encoder_numbers, floor_numbers
from solo_cjepa.tools.compare.runner import RunOutcome, RunSpec

PLAN, FLOORS, RUN = "plan.json", "floors.json", "run.json"


def _write_json(path: Path, data: Any) -> None:
    # write-then-rename: a report rebuilt while a job writes never reads half a file
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def save_plan(out: Path, title: str, settings: Dict[str, str], specs: Sequence[RunSpec]) -> None:
    runs = [{**asdict(spec), "overrides": list(spec.overrides)} for spec in specs]
    _write_json(out / PLAN, {"title": title, "settings": settings, "runs": runs})


def load_plan(out: Path) -> Dict[str, Any]:
    try:
        plan = json.loads((out / PLAN).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{out} holds no readable {PLAN} ({err}): give the --out folder of a comparison"
        ) from None
    plan["runs"] = [
        RunSpec(**{**run, "overrides": tuple(run["overrides"])}) for run in plan["runs"]
    ]
    return plan


def save_floors(out: Path, rows: List[Dict[str, object]]) -> None:
    _write_json(out / FLOORS, rows)


def upgraded(numbers: Dict[str, Any], floor: bool = False) -> Dict[str, Any]:
    """A record's offline numbers as this version writes them. Records from before both encoders
    were evaluated hold one encoder's numbers, named by ``encoder``: they become that encoder's
    (a floor's: both encoders', as floors are written now), and ``target``, which only cjepa
    runs were evaluated on then, marks a cjepa run. Records from before ``data.holdout`` were
    scored on the test set."""
    if not any(metric in numbers for metric, _ in OFFLINE_METRICS):
        return numbers  # this version's, or no offline numbers
    old = dict(numbers)
    encoder = old.pop("encoder", "target")
    scores = {metric: old.pop(metric) for metric, _ in OFFLINE_METRICS if metric in old}
    new = {**old, **(floor_numbers(scores) if floor else encoder_numbers(encoder, scores))}
    new.setdefault("split", "test")
    if encoder == "target":
        new.setdefault("ssl_method", "cjepa")
    return new


def load_floors(out: Path) -> List[Dict[str, object]]:
    try:
        rows = json.loads((out / FLOORS).read_text())
    except (OSError, ValueError):
        return []
    return [upgraded(row, floor=True) for row in rows]


def _relative(path: Optional[Path], out: Path) -> Optional[str]:
    """``path`` relative to the comparison's folder when it lies inside it: a committed or moved
    folder still finds its runs."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)


def save_outcome(folder: Path, outcome: RunOutcome) -> None:
    out = folder
    for _ in Path(folder_name(outcome.spec)).parts:  # folder is <out>/<entry>[/seed-S]
        out = out.parent
    record = {
        "status": outcome.status,
        "wall_time_s": outcome.wall_time_s,
        "run_dir": _relative(outcome.run_dir, out),
        "log_path": _relative(outcome.log_path, out),
        "error": outcome.error,
        "offline": outcome.offline,
        "finetune": outcome.finetune,
    }
    _write_json(folder / RUN, record)


def load_outcome(out: Path, spec: RunSpec) -> RunOutcome:
    """The run's record; a run without one is ``not finished`` (still running, never started,
    or killed before it could write one), with its log if it has one."""
    folder = out / folder_name(spec)
    try:
        record = json.loads((folder / RUN).read_text())
    except (OSError, ValueError):
        log = folder / "train.log"
        return RunOutcome(spec, "not finished", log_path=log if log.is_file() else None)
    path = lambda value: out / value if value else None  # noqa: E731 (absolute stays absolute)
    return RunOutcome(
        spec,
        record["status"],
        wall_time_s=record["wall_time_s"],
        run_dir=path(record["run_dir"]),
        log_path=path(record["log_path"]),
        error=record["error"],
        offline=upgraded(record["offline"]),
        finetune=record.get("finetune", {}),  # records from before --finetune have none
    )
