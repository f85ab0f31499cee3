"""Re-seeds the global RNGs at the start of every training epoch from ``(seed, epoch)``.

Lightning does not checkpoint RNG states, so a resumed run would otherwise shuffle and augment
its next epoch differently from an uninterrupted one; with this callback the data order,
augmentations and DataLoader worker seeds of epoch ``e`` depend on ``e`` only.
"""

import random

import lightning.pytorch as pl
import numpy as np
import torch

from solo_cjepa.seeds import mix_seed


class EpochSeed(pl.Callback):
    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs before Lightning creates the epoch's DataLoader iterator (and draws its sampler and
        # worker seeds from torch's global generator).
        seed = mix_seed(self.seed, trainer.current_epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
