"""Runs one comparison entry as a subprocess of ``solo_cjepa.tools.compare.train``, so a crash
take the other runs down, and keeps one progress line per run with an ETA on the terminal.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO

from solo_cjepa.tools.compare.clock import PROGRESS_ENV

POLL_S = 2.0
# Without a terminal to redraw in, a line every so often instead of every poll.
PLAIN_LINE_EVERY_S = 60.0


@dataclass(frozen=True)
class RunSpec:
    """One entry: ``name`` labels its row and names its folder; ``config_name`` is the yaml (no
    suffix) in the dataset's config folder; ``overrides`` are Hydra overrides of that entry;
    ``seed``, when set, overrides the config's (one run of the entry per seed)."""

    name: str
    config_name: str
    overrides: Sequence[str] = ()
    seed: Optional[int] = None


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str  # "ok", "failed (exit N)", "interrupted" or "not run"
    wall_time_s: float = 0.0
    run_dir: Optional[Path] = None  # the version folder: metrics.csv, args.json, checkpoint
    log_path: Optional[Path] = None
    error: str = ""
    offline: Dict[str, Any] = field(default_factory=dict)  # offline evaluation and its encoder
    finetune: Dict[str, Any] = field(default_factory=dict)  # --finetune: its top-1, encoder, time

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def budget_overrides(epochs: Optional[int], minutes: Optional[float]) -> List[str]:
    """Hydra overrides of a budget: ``max_epochs`` and/or Lightning's ``max_time``."""
    overrides = []
    if epochs is not None:
        overrides.append(f"++max_epochs={epochs}")
    if minutes is not None:
        seconds = round(minutes * 60)
        overrides.append(
            f"++max_time=00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        )
    return overrides


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def eta_s(progress: Dict[str, Any], max_time_s: Optional[float]) -> Optional[float]:
    """Seconds left: by the steps still to do at the rate so far, capped by what is left of the
    time budget (Lightning stops there, then validates once more)."""
    estimates = []
    step, total, elapsed = progress["step"], progress["total_steps"], progress["time_elapsed_s"]
    if step > 0 and total not in (None, float("inf")):
        estimates.append(elapsed / step * (total - step))
    if max_time_s is not None:
        estimates.append(max(0.0, max_time_s - elapsed))
    return min(estimates) if estimates else None


def progress_text(progress: Optional[Dict[str, Any]], max_time_s: Optional[float]) -> str:
    if progress is None:
        return "starting"
    eta = eta_s(progress, max_time_s)
    # After the last epoch Lightning has counted one more: "epoch 2/2", not 3/2
    epoch, max_epochs = progress["epoch"] + 1, progress["max_epochs"]
    if isinstance(max_epochs, int) and max_epochs > 0:
        epoch = min(epoch, max_epochs)
    return (
        f"epoch {epoch}/{max_epochs}  step {progress['step']}/"
        f"{progress['total_steps']}  {format_duration(progress['time_elapsed_s'])}"
        + (f"  ETA {format_duration(eta)}" if eta is not None else "")
    )


class ProgressLine:
    """One line on ``stream``: redrawn in place on a terminal, else printed now and then."""

    def __init__(self, prefix: str, stream: Optional[TextIO] = None):
        self.prefix = prefix
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.last_plain = float("-inf")
        self.width = 0

    def update(self, text: str) -> None:
        line = f"{self.prefix} {text}"
        if self.live:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
            self.stream.flush()
        elif time.monotonic() - self.last_plain >= PLAIN_LINE_EVERY_S:
            self.last_plain = time.monotonic()
            print(line, file=self.stream, flush=True)

    def finish(self, text: str) -> None:
        line = f"{self.prefix} {text}"
        print(("\r" + line.ljust(self.width)) if self.live else line, file=self.stream, flush=True)


def _read_progress(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"


def run(
    spec: RunSpec,
    command: Sequence[str],
    folder: Path,
    max_time_s: Optional[float],
    line: ProgressLine,
) -> RunOutcome:
    """Runs ``command`` (which trains into ``folder``) with its output in ``folder/train.log``,
    redrawing ``line`` until it ends; the caller finishes the line. Ctrl-C stops the run and is
    re-raised."""
    folder.mkdir(parents=True, exist_ok=True)
    log_path, progress_path = folder / "train.log", folder / "progress.json"
    start = time.monotonic()
    with open(log_path, "w") as log:
        # full tracebacks: the log's last line is then the error itself, not Hydra's hint
        env = {**os.environ, PROGRESS_ENV: str(progress_path), "HYDRA_FULL_ERROR": "1"}
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                try:
                    proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    line.update(progress_text(_read_progress(progress_path), max_time_s))
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            line.finish(f"interrupted after {format_duration(time.monotonic() - start)}")
            raise
    wall = time.monotonic() - start
    found = sorted(folder.glob("*/*/metrics.csv"))
    outcome = RunOutcome(
        spec,
        "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})",
        wall_time_s=wall,
        run_dir=found[-1].parent if found else None,
        log_path=log_path,
    )
    if not outcome.ok:
        outcome.error = _last_line(log_path)
    return outcome
