"""I-JEPA's per-step schedules that solo-learn lacks: a linear EMA momentum ramp (in an EMA
updater with a fused update) and the cosine weight-decay ramp. Both are pure functions of the
step, so a resumed run continues them exactly.
"""

import math

import torch
from solo.utils.momentum import MomentumUpdater
from torch import nn

MOMENTUM_SCHEDULES = ("linear", "cosine")


class EMAUpdater(MomentumUpdater):
    """solo's EMA updater with I-JEPA's linear tau ramp (``schedule="linear"``; ``"cosine"`` keeps
    solo's half-cosine) and the update as one fused lerp over all parameters."""

    def __init__(self, base_tau: float = 0.996, final_tau: float = 1.0, schedule: str = "linear"):
        super().__init__(base_tau, final_tau)
        if schedule not in MOMENTUM_SCHEDULES:
            raise ValueError(
                f"momentum.schedule must be one of {MOMENTUM_SCHEDULES}, got {schedule!r}"
            )
        self.schedule = schedule

    @torch.no_grad()
    def update(self, online_net: nn.Module, momentum_net: nn.Module):
        # m <- tau * m + (1 - tau) * o, in place: one kernel per dtype/device group instead of
        # three ops and two temporaries per tensor.
        momentum, online = list(momentum_net.parameters()), list(online_net.parameters())
        torch._foreach_lerp_(momentum, online, 1.0 - self.cur_tau)

    def update_tau(self, cur_step: int, max_steps: int):
        if self.schedule == "cosine":
            return super().update_tau(cur_step, max_steps)
        progress = min(cur_step / max(max_steps, 1), 1.0)
        self.cur_tau = self.base_tau + (self.final_tau - self.base_tau) * progress


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """Half-cosine from ``start`` at step 0 to ``end`` at ``total_steps`` (I-JEPA's
    ``CosineWDSchedule``), held at ``end`` afterwards."""
    progress = min(step / max(total_steps, 1), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def run_scaled_warmup(warmup_epochs: float, max_epochs: float, max_share: float) -> float:
    """The warm-up, in epochs, of a run of ``max_epochs``: ``warmup_epochs``, or ``max_share`` of
    the run when that is shorter (I-JEPA's 15 of 600 ImageNet epochs are 2.5 %; 1 warm-up epoch
    of a 2-epoch run would leave half of it at a low learning rate)."""
    return min(warmup_epochs, max_share * max_epochs)


def run_scaled_base_tau(base_tau: float, total_steps: int, max_share: float) -> float:
    """The start of the EMA momentum ramp for a run of ``total_steps``: ``base_tau``, or lower
    where the EMA's memory at the start, ``1 / (1 - base_tau)`` steps (250 at I-JEPA's 0.996),
    would be more than ``max_share`` of the run: there the target would keep most of its
    initial weights to the end (a share ``exp(-sum(1 - tau))`` of them)."""
    memory = max_share * total_steps
    return min(base_tau, max(0.0, 1.0 - 1.0 / memory)) if memory > 0 else 0.0
