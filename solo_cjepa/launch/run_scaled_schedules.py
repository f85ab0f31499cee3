"""Schedules that scale with the run's budget, for every method alike: the warm-up and the EMA
momentum's memory capped at a share of the run (``scheduler.warmup_max_share``,
``momentum.memory_max_share``), so a short run's target encoder follows its context encoder while
the long recipes keep their published values (I-JEPA's 15 warm-up epochs and 0.996 on ImageNet).
"""

from lightning.pytorch import Callback, LightningModule, Trainer
from omegaconf import DictConfig
from solo.utils.misc import omegaconf_select

from solo_cjepa.errors import note
from solo_cjepa.schedules import run_scaled_base_tau, run_scaled_warmup

# Chosen on the validation split (README, "Short runs"); null in a yaml switches a cap off.
WARMUP_MAX_SHARE = 0.1
MEMORY_MAX_SHARE = 0.05


def scale_warmup(cfg: DictConfig) -> None:
    """Caps ``scheduler.warmup_epochs`` at ``scheduler.warmup_max_share`` of ``max_epochs`` in
    place (before solo's method reads it), saying so when it changes."""
    share = omegaconf_select(cfg, "scheduler.warmup_max_share", WARMUP_MAX_SHARE)
    warmup = omegaconf_select(cfg, "scheduler.warmup_epochs", None)
    if share is None or warmup is None:
        return
    scaled = run_scaled_warmup(warmup, cfg.max_epochs, share)
    if scaled < warmup:
        note(
            f"warm-up {warmup:g} -> {scaled:g} epochs: at most scheduler.warmup_max_share="
            f"{share:g} of max_epochs={cfg.max_epochs}"
        )
        cfg.scheduler.warmup_epochs = scaled


class RunScaledMomentum(Callback):
    """Lowers a momentum method's ``base_tau`` when the EMA's memory would be more than
    ``max_share`` of the run's optimiser steps (:func:`run_scaled_base_tau`), then brings tau
    to the current step, before the method's own ``on_train_start`` (a resumed run gets the same
    ramp: it depends on the run's length only)."""

    def __init__(self, max_share: float):
        self.max_share = max_share

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        updater = getattr(pl_module, "momentum_updater", None)
        if updater is None:
            return
        total = trainer.estimated_stepping_batches
        base = run_scaled_base_tau(updater.base_tau, total, self.max_share)
        if base < updater.base_tau:
            note(
                f"EMA momentum ramp from {base:.4g} instead of {updater.base_tau:g}: its memory "
                f"1/(1-tau) is at most momentum.memory_max_share={self.max_share:g} of the "
                f"run's {total} steps"
            )
            updater.base_tau = base
        updater.update_tau(cur_step=trainer.global_step, max_steps=total)


def momentum_scaling(cfg: DictConfig) -> list:
    """The callback that applies ``momentum.memory_max_share`` (none when it is null)."""
    share = omegaconf_select(cfg, "momentum.memory_max_share", MEMORY_MAX_SHARE)
    return [] if share is None else [RunScaledMomentum(share)]
