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
