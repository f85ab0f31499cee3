"""Resuming through the launcher (``resume_from_checkpoint`` and auto-resume) continues a run
exactly: every later step has the loss, learning rates, weight decays and EMA tau of the
uninterrupted run, and the final weights (EMA target included) are identical; with the crops made
a batch at a time on the device (the recipe's default) and image by image by solo's pipeline."""

import shutil

import pytest
import torch
from cjepa_helpers import StepRecorder, compose_config, fashion_mnist_dir, fast_overrides, run_dirs

from solo_cjepa.launch.run import pretrain

STEPS_PER_EPOCH = 3


def _run(tmp_path, checkpoint_dir, batched, *extra):
    data = fashion_mnist_dir(tmp_path)
    overrides = fast_overrides(checkpoint_dir, steps=STEPS_PER_EPOCH) + [
        f"data.train_path={data}",
        f"data.val_path={data}",
        "max_epochs=2",
        "scheduler.warmup_epochs=1",
        "checkpoint.keep_prev=True",
        f"data.batched_augmentations={batched}",
        *extra,
    ]
    recorder = StepRecorder()
    pretrain(compose_config("pretrain", "fashion-mnist", "cjepa", overrides), callbacks=[recorder])
    return recorder.steps


def _weights(run_dir):
    (last,) = run_dir.glob("*ep=1.ckpt")
    return torch.load(last, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module", params=[True, False], ids=["batched", "per-image"])
def uninterrupted(tmp_path_factory, request):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    steps = _run(tmp_path, tmp_path / "models", request.param)
    (run_dir,) = run_dirs(tmp_path / "models", "cjepa")
    return request.param, steps, run_dir


def _assert_same_continuation(reference, resumed):
    assert sorted(resumed) == list(range(STEPS_PER_EPOCH + 1, 2 * STEPS_PER_EPOCH + 1))
    for step, values in resumed.items():
        assert values == reference[step], f"step {step} differs after resuming"
    # the schedules really move over these steps, so equality is informative
    first, last = reference[STEPS_PER_EPOCH + 1], reference[2 * STEPS_PER_EPOCH]
    assert first["lr"] != last["lr"] and first["tau"] < last["tau"]
    assert first["weight_decay"] != last["weight_decay"]


def _assert_same_weights(reference_dir, resumed_dir):
    reference, resumed = _weights(reference_dir), _weights(resumed_dir)
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key


def test_resume_from_checkpoint_continues_exactly(uninterrupted, tmp_path):
    batched, reference, reference_dir = uninterrupted
    (first_epoch,) = reference_dir.glob("*ep=0.ckpt")
    resume = f"resume_from_checkpoint='{first_epoch}'"
    resumed = _run(tmp_path, tmp_path / "models", batched, resume)
    _assert_same_continuation(reference, resumed)
    _assert_same_weights(reference_dir, run_dirs(tmp_path / "models", "cjepa")[-1])


def test_auto_resume_continues_exactly(uninterrupted, tmp_path):
    batched, reference, reference_dir = uninterrupted
    # a run interrupted after its first epoch: its folder holds args.json and the ep=0 checkpoint
    interrupted = tmp_path / "models" / "cjepa" / reference_dir.name
    interrupted.mkdir(parents=True)
    shutil.copy(reference_dir / "args.json", interrupted)
    shutil.copy(next(reference_dir.glob("*ep=0.ckpt")), interrupted)

    resumed = _run(tmp_path, tmp_path / "models", batched, "auto_resume.enabled=True")
    _assert_same_continuation(reference, resumed)
    new_runs = [d for d in run_dirs(tmp_path / "models", "cjepa") if d != interrupted]
    _assert_same_weights(reference_dir, new_runs[-1])
