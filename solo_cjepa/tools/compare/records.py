"""What a comparison leaves on disk for its report: ``plan.json`` (the runs asked for and the
settings), ``floors.json`` and one ``run.json`` per finished run in its folder. The report is
rebuilt from these alone, whichever launcher ran the runs and whether or not they all finished.
"""

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

from solo_cjepa.errors import ConfigError
from solo_cjepa.tools.compare.presets import folder_name
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


def with_split(numbers: Dict[str, Any]) -> Dict[str, Any]:
    """Offline numbers of a record older than ``data.holdout``: scored on the test set."""
    if "offline_logreg_top1" in numbers and "split" not in numbers:
        return {**numbers, "split": "test"}
    return numbers


def load_floors(out: Path) -> List[Dict[str, object]]:
    try:
        rows = json.loads((out / FLOORS).read_text())
    except (OSError, ValueError):
        return []
    return [with_split(row) for row in rows]


def save_outcome(folder: Path, outcome: RunOutcome) -> None:
    record = {
        "status": outcome.status,
        "wall_time_s": outcome.wall_time_s,
        "run_dir": outcome.run_dir,
        "log_path": outcome.log_path,
        "error": outcome.error,
        "offline": outcome.offline,
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
    path = lambda value: Path(value) if value else None  # noqa: E731
    return RunOutcome(
        spec,
        record["status"],
        wall_time_s=record["wall_time_s"],
        run_dir=path(record["run_dir"]),
        log_path=path(record["log_path"]),
        error=record["error"],
        offline=with_split(record["offline"]),
    )
