"""Run health: a non-finite loss ends the run with one ``error:`` line before any checkpoint is
written after it, and a JEPA encoder whose effective rank stays low warns once, or stops the run
(``health.collapse``); see docs/run-health.md.
"""

from typing import Any, Dict, List, Mapping, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from omegaconf import DictConfig

from solo_cjepa.errors import RunError, note
from solo_cjepa.health import (
    COLLAPSE_DEFAULTS,
    CollapseStreak,
    first_non_finite,
    new_record,
    record_non_finite,
)
from solo_cjepa.launch.checkpoints.resume_hint import resume_hint

# The collapse monitors C-JEPA logs on the steps Lightning writes (CJEPA.training_step).
RANK_METRICS = {"context": "train_context_rank", "target": "train_target_rank"}
COLLAPSED_METRIC = "health/collapsed"


def _stop(trainer: Trainer, reason: str) -> None:
    """Raises the :class:`RunError` every process reaches together, naming the checkpoint the
    first process wrote (the others' ``Checkpointer`` may hold another run name)."""
    raise RunError(f"{reason}; {trainer.strategy.broadcast(resume_hint(trainer), src=0)}")


def _logged_step(trainer: Trainer) -> int:
    # the step the loggers write this batch's values under (the CSV's step column)
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def _loss_terms(pl_module: LightningModule, outputs: Any) -> Dict[str, torch.Tensor]:
    """The objective's terms the method left (C-JEPA's ``loss_terms``), else its total loss."""
    terms = getattr(pl_module, "loss_terms", None)
    if terms:
        return terms
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    return {"loss": loss} if isinstance(loss, torch.Tensor) else {}


class RunHealth(Callback):
    """Keeps, on the device, the first step whose loss terms were non-finite and reads it (one
    all-gather, so every process stops together) where the run synchronises anyway: on the steps
    Lightning logs and at each epoch's end, before solo's ``Checkpointer`` (which must come after
    this callback) saves. With ``collapse`` ``warn`` or ``stop``, it also follows the encoders'
    logged effective ranks, averaged over processes."""

    def __init__(
        self,
        collapse: str = "off",
        collapse_rank: float = COLLAPSE_DEFAULTS["collapse_rank"],
        collapse_steps: int = COLLAPSE_DEFAULTS["collapse_steps"],
    ):
        self.collapse = collapse
        self.streak = CollapseStreak(collapse_rank, collapse_steps)
        self.record: Optional[torch.Tensor] = None
        self.names: List[str] = []

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> "RunHealth":
        """From a checked pretraining cfg's ``health`` settings."""
        return cls(cfg.health.collapse, cfg.health.collapse_rank, cfg.health.collapse_steps)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        terms = _loss_terms(pl_module, outputs)
        if terms:
            if self.record is None:
                self.names = list(terms)
                self.record = new_record(len(terms), pl_module.device)
            step = _logged_step(trainer)
            self.record = record_non_finite(self.record, step, list(terms.values()))
        if trainer._logger_connector.should_update_logs:  # the method's monitors ran this step
            self._stop_if_non_finite(trainer, pl_module)
            if self.collapse != "off":
                self._follow_ranks(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop_if_non_finite(trainer, pl_module)

    def _stop_if_non_finite(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.record is None:
            return
        records = pl_module.all_gather(self.record).reshape(trainer.world_size, -1).tolist()
        found = first_non_finite(records, self.names)
        if found is None:
            return
        step, names = found
        plural = "s" if len(names) > 1 else ""
        _stop(
            trainer,
            f"the loss went non-finite at step {step} (term{plural}: {', '.join(names)}); "
            "nothing was saved after it",
        )

    def _follow_ranks(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = trainer.callback_metrics
        if not all(name in metrics for name in RANK_METRICS.values()):
            return  # a method without the monitors
        ranks = torch.stack([metrics[name].float() for name in RANK_METRICS.values()])
        ranks = pl_module.all_gather(ranks.to(pl_module.device)).reshape(trainer.world_size, -1)
        ranks = dict(zip(RANK_METRICS, ranks.mean(dim=0).tolist()))
        collapsed = self.streak.update(ranks)
        if not collapsed:
            return
        plural = "s" if len(collapsed) > 1 else ""
        what = (
            f"the effective rank of the {' and '.join(collapsed)} encoder{plural} stayed below "
            f"health.collapse_rank={self.streak.rank_threshold:g} for "
            f"health.collapse_steps={self.streak.steps} logged steps (at step "
            f"{_logged_step(trainer)}: {', '.join(f'{e} {ranks[e]:.3g}' for e in collapsed)})"
        )
        if self.collapse == "stop":
            _stop(trainer, f"{what}: it collapsed")
        note(f"warning: {what}: it may have collapsed (health.collapse=stop ends such a run)")
        for logger in trainer.loggers:  # once: a value given to self.log is written every step
            logger.log_metrics({COLLAPSED_METRIC: 1.0}, step=_logged_step(trainer))
