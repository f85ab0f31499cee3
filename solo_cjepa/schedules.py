"""I-JEPA's per-step schedules that solo-learn lacks: a linear EMA momentum ramp and the cosine
weight-decay ramp. Both are pure functions of the step, so a resumed run continues them exactly.
"""

import math

from solo.utils.momentum import MomentumUpdater


class LinearMomentumUpdater(MomentumUpdater):
    """solo's EMA updater with I-JEPA's linear tau ramp (solo's own ramp is a half cosine)."""

    def update_tau(self, cur_step: int, max_steps: int):
        progress = min(cur_step / max(max_steps, 1), 1.0)
        self.cur_tau = self.base_tau + (self.final_tau - self.base_tau) * progress


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """Half-cosine from ``start`` at step 0 to ``end`` at ``total_steps`` (I-JEPA's
    ``CosineWDSchedule``), held at ``end`` afterwards."""
    progress = min(step / max(total_steps, 1), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
