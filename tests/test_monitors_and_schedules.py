"""Collapse monitors and I-JEPA's schedules against closed-form values."""

import math

import pytest
import torch

from solo_cjepa.monitors import effective_rank, mean_std, relative_distance
from solo_cjepa.schedules import (
    EMAUpdater,
    cosine_ramp,
    run_scaled_base_tau,
    run_scaled_warmup,
)


def test_effective_rank_of_isotropic_low_rank_and_collapsed_embeddings():
    q, _ = torch.linalg.qr(torch.randn(64, 16, dtype=torch.float64))
    assert effective_rank(q.float()).item() == pytest.approx(16, rel=1e-4)
    low_rank = torch.randn(64, 3) @ torch.randn(3, 16)
    assert effective_rank(low_rank).item() <= 3.0 + 1e-4
    assert effective_rank(torch.ones(64, 16)).item() == pytest.approx(1.0, abs=1e-4)


def test_mean_std_is_the_mean_of_per_dimension_stds():
    emb = torch.stack([torch.arange(5.0), 2 * torch.arange(5.0), torch.zeros(5)], dim=1)
    expected = (emb[:, 0].std() + emb[:, 1].std() + 0.0) / 3
    assert mean_std(emb).item() == pytest.approx(expected.item())
    assert mean_std(torch.ones(8, 4)).item() == 0.0


def test_linear_momentum_ramp_of_ijepa():
    updater = EMAUpdater(0.996, 1.0)
    for step, tau in [(0, 0.996), (250, 0.997), (1000, 1.0), (1500, 1.0)]:
        updater.update_tau(step, 1000)
        assert updater.cur_tau == pytest.approx(tau)


def test_cosine_momentum_ramp_is_solos():
    updater = EMAUpdater(0.99, 1.0, schedule="cosine")
    updater.update_tau(500, 1000)
    assert updater.cur_tau == pytest.approx(1.0 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)


def test_ema_update_is_tau_times_target_plus_one_minus_tau_times_online():
    online, target = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    before = [p.detach().clone() for p in target.parameters()]
    updater = EMAUpdater(0.9, 1.0)
    updater.update(online, target)
    for new, old, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * o.detach())


def test_cosine_weight_decay_ramp_of_ijepa():
    # I-JEPA's CosineWDSchedule: final + (ref - final) * 0.5 * (1 + cos(pi * t / T))
    assert cosine_ramp(0, 100, 0.04, 0.4) == pytest.approx(0.04)
    assert cosine_ramp(50, 100, 0.04, 0.4) == pytest.approx(0.22)
    assert cosine_ramp(25, 100, 0.04, 0.4) == pytest.approx(
        0.4 - 0.36 * 0.5 * (1 + math.cos(math.pi / 4))
    )
    assert cosine_ramp(200, 100, 0.04, 0.4) == pytest.approx(0.4)


def _initial_share_left(base_tau: float, steps: int) -> float:
    """What share of its initial weights an EMA keeps after a linear tau ramp to 1.0 over
    ``steps`` steps: the product of the taus, step by step."""
    share = 1.0
    for step in range(steps):
        share *= base_tau + (1.0 - base_tau) * step / steps
    return share


def test_run_scaled_ema_keeps_ijepa_at_imagenet_scale_and_forgets_the_init_in_short_runs():
    imagenet_steps = 600 * 1_281_167 // 2048  # the ImageNet recipe: 600 epochs of batch 2048
    assert run_scaled_base_tau(0.996, imagenet_steps, 0.05) == 0.996
    assert run_scaled_base_tau(0.996, 400 * 50_000 // 256, 0.05) == 0.996  # the CIFAR recipe
    # the old study: 234 steps; I-JEPA's ramp keeps ~60 % of the initial weights to the end
    assert _initial_share_left(0.996, 234) == pytest.approx(math.exp(-0.47), abs=0.01)
    base = run_scaled_base_tau(0.996, 234, 0.05)
    assert 1 / (1 - base) == pytest.approx(0.05 * 234)  # memory: 5 % of the run
    assert _initial_share_left(base, 234) < 0.01
    assert run_scaled_base_tau(0.99, 10, 0.05) == 0.0  # memory under one step: follow at once


def test_run_scaled_warmup_is_capped_at_a_share_of_the_run():
    assert run_scaled_warmup(15, 600, 0.1) == 15  # I-JEPA's ImageNet warm-up
    assert run_scaled_warmup(40, 400, 0.1) == 40  # the ImageNet-100 and CIFAR recipes' 10 %
    assert run_scaled_warmup(1, 2, 0.1) == pytest.approx(0.2)


def test_relative_distance_is_that_of_the_flattened_weights():
    a = [torch.randn(3, 4), torch.randn(5)]
    b = [torch.randn(3, 4), torch.randn(5)]
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    expected = torch.linalg.vector_norm(flat_a - flat_b) / torch.linalg.vector_norm(flat_b)
    assert relative_distance(a, b) == pytest.approx(expected.item(), rel=1e-5)
    assert relative_distance(b, b) == 0.0
