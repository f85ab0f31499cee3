"""Collapse monitors that every method gets alike: the per-dimension std and the effective rank of
the evaluated encoder's features on a fixed set of validation images, every few training steps,
and for momentum methods how far the EMA target has moved from its initial weights and from the
context encoder (does it follow?).

solo's methods log different collapse statistics (C-JEPA its own, BYOL only ``train_z_std``,
VICReg none), so the comparison measures all of them the same way here.
"""

from typing import List, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from solo_cjepa.launch.checkpoints.loading import ENCODER_ATTRIBUTES
from solo_cjepa.monitors import effective_rank, mean_std, relative_distance
from solo_cjepa.tools.offline_eval import spread_images


class FeatureMonitor(Callback):
    def __init__(self, encoder: str, num_images: int = 256, every_n_steps: Optional[int] = None):
        """Logs ``monitor_feature_std`` and ``monitor_feature_rank`` at step 0 and then every
        ``every_n_steps`` (default: the trainer's ``log_every_n_steps``) optimiser steps.

        Args:
            encoder: ``context`` (solo's ``backbone``) or ``target`` (``momentum_backbone``).
            num_images: how many validation images (spread over the set) to embed.
        """
        self.attribute = ENCODER_ATTRIBUTES[encoder]
        self.num_images = num_images
        self.every_n_steps = every_n_steps
        self.images: Optional[torch.Tensor] = None
        self.initial_target: Optional[List[torch.Tensor]] = None
        self.last_step = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.val_dataloaders is None or trainer.logger is None or not trainer.is_global_zero:
            return
        self.every_n_steps = self.every_n_steps or trainer.log_every_n_steps
        self.images = spread_images(trainer.val_dataloaders.dataset, self.num_images)
        target = getattr(pl_module, "momentum_backbone", None)
        if target is not None:  # a resumed run measures from where it resumed
            self.initial_target = [p.detach().clone() for p in target.parameters()]
        self._log(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # with gradient accumulation several batches end on one step
        if self.images is not None and step != self.last_step and step % self.every_n_steps == 0:
            self._log(trainer, pl_module)

    @torch.no_grad()
    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_step = trainer.global_step
        encoder = getattr(pl_module, self.attribute)
        was_training = encoder.training
        encoder.eval()
        feats = torch.cat([encoder(x.to(pl_module.device)) for x in self.images.split(256)])
        encoder.train(was_training)
        metrics = {
            "monitor_feature_std": float(mean_std(feats)),
            "monitor_feature_rank": float(effective_rank(feats)),
        }
        if self.initial_target is not None:
            target = list(pl_module.momentum_backbone.parameters())
            metrics["monitor_target_from_init"] = relative_distance(target, self.initial_target)
            metrics["monitor_target_from_context"] = relative_distance(
                target, pl_module.backbone.parameters()
            )
        # Straight to the logger: self.log would only keep the values of Lightning's logging steps.
        trainer.logger.log_metrics(metrics, step=trainer.global_step)
