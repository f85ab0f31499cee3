"""Wall-clock, throughput and memory of a training run, logged with its metrics and written to a
progress file that the comparison polls for its one-line-per-run progress and ETA.
"""

import json
import os
import resource
import sys
import time
from typing import Any, Dict, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

PROGRESS_ENV = "SOLO_CJEPA_PROGRESS_FILE"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux from ``VmHWM``: ``ru_maxrss`` survives ``exec`` and would report the launching
    process's memory (the comparison's, at the fork) as this run's.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB else


class RunClock(Callback):
    def __init__(self, progress_path: Optional[str] = None, write_every_s: float = 2.0):
        """Logs ``time_elapsed_s`` (since training started), ``train_time_s`` (training batches
        and their data loading, validation excluded), ``train_images`` (images, not crops),
        ``epochs_done`` (fractional: a time budget can stop mid-epoch) and ``peak_memory_mb``
        (GPU memory allocated on CUDA, else the process's peak RSS) at every training and
        validation epoch end, and writes them with the step counts to ``progress_path`` as JSON
        at most every ``write_every_s`` seconds.
        """
        self.progress_path = progress_path
        self.write_every_s = write_every_s
        self.start = self.mark = self.last_write = 0.0
        self.train_time = 0.0
        self.images = 0
        self.epochs_done = 0.0

    def state(self, trainer: pl.Trainer) -> Dict[str, Any]:
        if trainer.strategy.root_device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(trainer.strategy.root_device) / 2**20
        else:
            peak = peak_rss_mb()
        return {
            "time_elapsed_s": time.monotonic() - self.start,
            "train_time_s": self.train_time,
            "train_images": float(self.images),
            "epochs_done": self.epochs_done,
            "peak_memory_mb": peak,
        }

    def _write(self, trainer: pl.Trainer, done: bool = False) -> None:
        self.last_write = time.monotonic()
        if not self.progress_path or not trainer.is_global_zero:
            return
        progress = {
            **self.state(trainer),
            "step": trainer.global_step,
            "total_steps": trainer.estimated_stepping_batches,
            "epoch": trainer.current_epoch,
            "max_epochs": trainer.max_epochs,
            "done": done,
        }
        # write-then-rename: the poller never reads a half-written file
        tmp = f"{self.progress_path}.tmp"
        with open(tmp, "w") as f:
            json.dump(progress, f)
        os.replace(tmp, self.progress_path)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.mark = time.monotonic()
        self._write(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.mark = time.monotonic()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        now = time.monotonic()
        self.train_time += now - self.mark
        self.mark = now
        self.images += len(batch[0]) * trainer.world_size  # batch: [indexes, crops, targets]
        self.epochs_done = trainer.current_epoch + (batch_idx + 1) / trainer.num_training_batches
        if now - self.last_write >= self.write_every_s:
            self._write(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.mark = time.monotonic()  # validation inside an epoch is not training time

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            state = {f"val_{k}": v for k, v in self.state(trainer).items()}
            pl_module.log_dict(state, sync_dist=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log_dict(self.state(trainer), sync_dist=True)
        self._write(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, done=True)
