"""Run health on tiny runs where the condition is forced: a loss term made infinite from a given
step stops the run with one ``error:`` line naming the step and the term, exit status 1, and the
last checkpoint untouched (with one process and with two, the poisoned loss on one of them); an
effective-rank threshold above any encoder's rank warns once (log and CSV), or stops the run."""

import csv
import hashlib
import math
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cjepa_helpers import (
    REPO,
    InfiniteCovariance,
    StepRecorder,
    compose_config,
    fashion_mnist_dir,
    fast_overrides,
    run_bounded,
    run_dirs,
)
from solo.utils.checkpointer import Checkpointer

import solo_cjepa.method
from bench.syncs import HostSyncCounter
from solo_cjepa.errors import RunError
from solo_cjepa.health import (
    CollapseStreak,
    first_non_finite,
    new_record,
    record_non_finite,
)
from solo_cjepa.launch.checkpoints.resume_hint import resume_hint
from solo_cjepa.launch.run import pretrain

TIMEOUT_S = 180
INF = math.inf


# --- the decisions, on numbers ------------------------------------------------------------------


def test_record_keeps_the_first_non_finite_step_without_a_host_sync():
    record = new_record(3, torch.device("cpu"))
    one = torch.tensor(1.0)
    with HostSyncCounter() as counter:
        record = record_non_finite(record, 4, [one, one, one])
        record = record_non_finite(record, 5, [one, torch.tensor(INF), torch.tensor(float("nan"))])
        record = record_non_finite(record, 6, [torch.tensor(INF), one, one])  # later: ignored
    assert counter.total == 0, dict(counter.calls)
    assert record.tolist() == [5, 0, 1, 1]


def test_first_non_finite_step_over_processes():
    names = ["jepa", "vicreg_var"]
    assert first_non_finite([[-1, -1, -1], [-1, -1, -1]], names) is None
    # the earliest step wins; the terms are those non-finite at that step on any process
    records = [[9, 1, 0], [7, 0, 1], [7, 1, 0]]
    assert first_non_finite(records, names) == (7, ["jepa", "vicreg_var"])


def test_collapse_streak_counts_consecutive_logged_steps_and_reports_once():
    streak = CollapseStreak(rank_threshold=3.0, steps=2)
    assert streak.update({"context": 2.0, "target": 5.0}) == []
    assert streak.update({"context": 4.0, "target": 2.9}) == []  # context's streak broken
    assert streak.update({"context": 2.0, "target": 2.5}) == ["target"]
    assert streak.update({"context": 2.0, "target": 2.5}) == []  # reported once
    assert streak.streaks == {"context": 2, "target": 3}
    nan = CollapseStreak(rank_threshold=3.0, steps=1)
    assert nan.update({"target": float("nan")}) == []  # the non-finite check's to report


def test_resume_hint_names_the_newest_checkpoint_else_the_resumed_one():
    checkpointer = Checkpointer.__new__(Checkpointer)  # what initial_setup leaves before a save
    checkpointer.last_ckpt = None
    trainer = SimpleNamespace(callbacks=[checkpointer], ckpt_path=None)
    assert resume_hint(trainer) == "no checkpoint was written yet"
    trainer.ckpt_path = "runs/a-ep=3.ckpt"  # the run resumed from it and wrote none yet
    assert resume_hint(trainer) == "resume with resume_from_checkpoint=runs/a-ep=3.ckpt"
    checkpointer.last_ckpt = Path("runs/b/b-ep=4.ckpt")
    assert resume_hint(trainer) == "resume with resume_from_checkpoint=runs/b/b-ep=4.ckpt"


# --- a run whose loss goes non-finite -------------------------------------------------------------


def test_a_non_finite_loss_stops_at_the_next_logged_step(tmp_path, monkeypatch):
    """Poisoned from step 2 with log_every_n_steps=2 (steps 1, 3, ... logged): step 3 is the
    last to run, the epoch's end (and its checkpoint) is never reached."""
    # undone after the test: the poisoning callback swaps the regularizer in and out
    monkeypatch.setattr(
        solo_cjepa.method, "vicreg_regularizer", solo_cjepa.method.vicreg_regularizer
    )
    data = fashion_mnist_dir(tmp_path)
    overrides = fast_overrides(tmp_path / "models", steps=6) + [
        f"data.train_path={data}",
        f"data.val_path={data}",
        "+log_every_n_steps=2",
    ]
    recorder = StepRecorder()
    cfg = compose_config("pretrain", "fashion-mnist", "cjepa", overrides)
    with pytest.raises(RunError) as err:
        pretrain(cfg, callbacks=[InfiniteCovariance(step=2), recorder])
    assert str(err.value) == (
        "the loss went non-finite at step 2 (term: vicreg_cov); nothing was saved after it; "
        "no checkpoint was written yet"
    )
    assert sorted(recorder.steps) == [1, 2, 3, 4]  # global steps after each of steps 0-3
    (run_dir,) = run_dirs(tmp_path / "models", "cjepa")
    assert not list(run_dir.glob("*.ckpt"))


# A launcher that pretrains with InfiniteCovariance and prints, at each epoch's start, the hash
# of the run's last checkpoint.
POISONED_LAUNCHER = """
import hashlib, sys
from pathlib import Path
import hydra
from lightning.pytorch import Callback
from cjepa_helpers import InfiniteCovariance
from solo_cjepa.errors import exit_on_config_error
from solo_cjepa.launch.checkpoints.resume_hint import last_checkpoint
from solo_cjepa.launch.run import pretrain

class HashCheckpoints(Callback):
    def on_train_epoch_start(self, trainer, *args):
        last = last_checkpoint(trainer)
        if last and trainer.is_global_zero:  # the process that wrote it
            digest = hashlib.sha256(Path(last).read_bytes()).hexdigest()
            print("sha256", last, digest, file=sys.stderr, flush=True)

@hydra.main(version_base="1.2", config_path=CONFIG_DIR, config_name="cjepa")
def main(cfg):
    with exit_on_config_error():
        pretrain(cfg, callbacks=[InfiniteCovariance(POISON_STEP, POISON_RANK), HashCheckpoints()])

main()
"""


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("devices,rank", [(1, None), (2, 1)], ids=["one-process", "two-processes"])
def test_a_non_finite_loss_ends_the_launch_with_one_line(tmp_path, devices, rank):
    """Three steps per epoch, the covariance term infinite from step 4 (the second epoch's
    second; on the second process only with two): the second epoch's end stops the run on every
    process before its checkpoint, and the first epoch's checkpoint is left as it was written."""
    data = fashion_mnist_dir(tmp_path)
    script = tmp_path / "poisoned_pretrain.py"
    config_dir = REPO / "scripts" / "pretrain" / "fashion-mnist"
    script.write_text(
        f"CONFIG_DIR = {str(config_dir)!r}\nPOISON_STEP = 4\nPOISON_RANK = {rank}\n"
        + POISONED_LAUNCHER
    )
    command = [
        sys.executable,
        str(script),
        f"devices={devices}",
        "backbone.name=vit_nano",
        "optimizer.batch_size=8",
        "data.num_workers=0",
        "max_epochs=2",
        "+limit_train_batches=3",
        "+limit_val_batches=2",
        f"data.train_path={data}",
        f"data.val_path={data}",
    ]
    pythonpath = os.pathsep.join([str(REPO), str(REPO / "tests")])
    run = run_bounded(command, tmp_path, TIMEOUT_S, env={**os.environ, "PYTHONPATH": pythonpath})
    assert run.returncode == 1, run.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "trained_models", "cjepa")
    (checkpoint,) = run_dir.glob("*.ckpt")
    assert checkpoint.name.endswith("-ep=0.ckpt")
    checkpoint = checkpoint.relative_to(tmp_path)  # as the run names it: checkpoint.dir is relative
    hashed = re.findall(r"^sha256 (\S+) (\w+)$", run.stderr, flags=re.M)
    # as at the second epoch's start
    assert hashed == [(str(checkpoint), _sha256(tmp_path / checkpoint))]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert (
        errors
        == [
            "error: the loss went non-finite at step 4 (term: vicreg_cov); nothing was saved after "
            f"it; resume with resume_from_checkpoint={checkpoint}"
        ]
        * devices
    )  # every process stops at the same check, none left waiting in a collective
    assert run.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in run.stderr


# --- a run whose encoders look collapsed ----------------------------------------------------------

COLLAPSE = re.compile(
    r"the effective rank of the context and target encoders stayed below "
    r"health\.collapse_rank=1000 for health\.collapse_steps=2 logged steps \(at step 1: "
    r"context [\d.]+, target [\d.]+\)"
)


def _launch_collapsing(tmp_path, *overrides):
    data = fashion_mnist_dir(tmp_path)
    command = [
        sys.executable,
        str(REPO / "main_pretrain.py"),
        "--config-name",
        "cjepa.yaml",
        *fast_overrides(tmp_path / "models", steps=3),
        f"data.train_path={data}",
        f"data.val_path={data}",
        "+log_every_n_steps=1",
        "++health.collapse_rank=1000",  # above any rank: every logged step counts as collapsed
        "++health.collapse_steps=2",
        *overrides,
    ]
    return run_bounded(command, tmp_path, TIMEOUT_S)


def test_collapse_warns_once_in_the_log_and_the_csv(tmp_path):
    run = _launch_collapsing(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("[solo-cjepa] warning: ")
    assert COLLAPSE.search(warnings[0]), warnings[0]
    assert warnings[0].endswith(": it may have collapsed (health.collapse=stop ends such a run)")
    (run_dir,) = run_dirs(tmp_path / "models", "cjepa")
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["step"] for row in rows if row.get("train_target_rank")] == ["0", "1", "2"]
    assert [(row["step"], row["health/collapsed"]) for row in rows if row["health/collapsed"]] == [
        ("1", "1.0")
    ]
    assert list(run_dir.glob("*-ep=0.ckpt"))  # the run went on to its end


def test_collapse_stop_ends_the_run_with_one_line(tmp_path):
    run = _launch_collapsing(tmp_path, "++health.collapse=stop")
    assert run.returncode == 1, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and COLLAPSE.search(last), last
    assert last.endswith(": it collapsed; no checkpoint was written yet")
    assert "warning:" not in run.stderr
