"""Run-scaled schedules through the launcher: a short run's warm-up is capped at a share of its
epochs and its EMA ramp starts where the EMA's memory is a share of its steps, for C-JEPA (I-JEPA's
linear ramp) and BYOL (solo's cosine ramp) alike; null switches either cap off."""

import math

import pytest
from cjepa_helpers import StepRecorder, compose_config, fashion_mnist_dir, fast_overrides

from solo_cjepa.launch.run import pretrain

STEPS, EPOCHS = 3, 2


def _taus(tmp_path, method, *extra):
    data = fashion_mnist_dir(tmp_path)
    overrides = fast_overrides(tmp_path / "runs", steps=STEPS) + [
        f"data.train_path={data}",
        f"data.val_path={data}",
        f"max_epochs={EPOCHS}",
        "checkpoint.enabled=False",
        *extra,
    ]
    recorder = StepRecorder()
    pretrain(compose_config("pretrain", "fashion-mnist", method, overrides), callbacks=[recorder])
    return {step: values["tau"] for step, values in recorder.steps.items()}


@pytest.mark.parametrize("method", ["cjepa", "byol"])
def test_ema_ramp_starts_from_a_memory_of_half_the_run(tmp_path, method, capfd):
    total = STEPS * EPOCHS
    taus = _taus(tmp_path, method, "++momentum.memory_max_share=0.5")
    base = 1 - 1 / (0.5 * total)  # a memory of 3 steps, instead of 250 (cjepa) or 100 (byol)
    for step, tau in taus.items():  # recorded at global step k, before the ramp moves: tau(k - 1)
        step -= 1
        if method == "cjepa":
            expected = base + (1 - base) * step / total
        else:
            expected = 1 - (1 - base) * (math.cos(math.pi * step / total) + 1) / 2
        assert tau == pytest.approx(expected), step
    assert "EMA momentum ramp from 0.6667 instead of" in capfd.readouterr().err


def test_caps_switched_off_keep_the_recipe(tmp_path, capfd):
    taus = _taus(
        tmp_path, "cjepa", "++momentum.memory_max_share=null", "++scheduler.warmup_max_share=null"
    )
    assert taus[2] == pytest.approx(0.996 + 0.004 / (STEPS * EPOCHS))
    err = capfd.readouterr().err
    assert "EMA momentum ramp" not in err and "warm-up" not in err


def test_warmup_is_capped_at_a_tenth_of_the_run(tmp_path, capfd):
    _taus(tmp_path, "cjepa")
    assert "warm-up 1 -> 0.2 epochs: at most scheduler.warmup_max_share=0.1 of max_epochs=2" in (
        capfd.readouterr().err
    )
