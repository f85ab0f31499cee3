"""What a run tells its user (hydra's yamls switch Lightning's own lines off): one line with the
hardware actually used, the training loss and online top-1 in the progress bar, unreadable images
skipped per epoch, and a closing summary with the command that evaluates the checkpoint.
"""

import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from solo.utils.checkpointer import Checkpointer

from solo_cjepa.errors import note

# Shown on every run, though they concern no setting of it.
NOISE = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning 2.1 against newer torch
    r".*'pin_memory' argument is set as true but no accelerator",  # solo's loaders on a CPU
)
# Online top-1 accuracies solo logs after validation, by encoder.
ONLINE_METRICS = ("val_acc1", "momentum_val_acc1", "val_loss")
# Where each dataset's linear-evaluation yaml lives.
LINEAR_CONFIGS = {
    "fashion-mnist": "fashion-mnist",
    "cifar10": "cifar",
    "cifar100": "cifar",
    "imagenet100": "imagenet-100",
    "imagenet": "imagenet",
    "custom": "custom",
}


def quiet_warnings() -> None:
    """Silences the warnings in :data:`NOISE`."""
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)


class ProgressBar(TQDMProgressBar):
    """Lightning's bar with the training loss and, once validated, the online top-1 in place of
    the logger's version number (solo logs nothing to the bar)."""

    def __init__(self):
        super().__init__()
        self.loss: Optional[float] = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.loss = float(loss)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> Dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        if self.loss is not None:
            items["loss"] = f"{self.loss:.4g}"
        for key in ("val_acc1", "momentum_val_acc1"):
            if key in trainer.callback_metrics:
                items[key] = f"{float(trainer.callback_metrics[key]):.1f}"
        return items


def _skipped_counters(trainer: Trainer) -> Sequence[Any]:
    """The datasets that count skipped unreadable images (:class:`UnreadablePolicy`)."""
    loaders = [trainer.train_dataloader, trainer.val_dataloaders]
    datasets = [getattr(loader, "dataset", None) for loader in loaders]
    return [d for d in datasets if hasattr(d, "take_skipped")]


class RunReport(Callback):
    """Says what runs, and at the end what came out of it."""

    def __init__(self, linear_command: Optional[str] = None):
        self.linear_command = linear_command

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        note(
            f"training {type(pl_module).__name__} on {trainer.num_devices} "
            f"{type(trainer.accelerator).__name__.replace('Accelerator', '').lower()} "
            f"device(s) x {trainer.num_nodes} node(s) = {trainer.world_size} process(es), "
            f"precision {trainer.precision}, strategy {type(trainer.strategy).__name__}"
        )

    def _report_skipped(self, trainer: Trainer, what: str) -> None:
        skipped = sum(counter.take_skipped() for counter in _skipped_counters(trainer))
        if skipped:
            note(f"{what}: skipped {skipped} reads of unreadable images (named above)")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report_skipped(trainer, f"epoch {trainer.current_epoch}")

    def summary(self, trainer: Trainer, metrics: Dict[str, Any]) -> None:
        """The run folder, its last checkpoint, the final online ``metrics`` (read on every
        process: this runs on the first only) and, for pretraining, the command that evaluates
        the checkpoint."""
        checkpointer = next((c for c in trainer.callbacks if isinstance(c, Checkpointer)), None)
        folder = getattr(checkpointer, "path", None) or getattr(trainer.logger, "log_dir", None)
        last = getattr(checkpointer, "last_ckpt", None)
        online = ", ".join(
            f"{key} {float(metrics[key]):.4g}" for key in ONLINE_METRICS if key in metrics
        )
        note(f"done: {trainer.global_step} steps, run folder {folder}")
        note(f"last checkpoint: {last or 'none (checkpoint.enabled=False)'}")
        if online:
            note(f"final online metrics: {online}")
        if last and self.linear_command:
            run = Path(last).parent
            note(f"evaluate it: {self.linear_command} pretrained_feature_extractor={run}")


def linear_command(dataset: str, holdout: float = 0.0) -> Optional[str]:
    """The ``main_linear.py`` command for checkpoints of ``dataset``, from the repo root; after a
    run with ``data.holdout``, one that validates on the same held-out images."""
    folder = LINEAR_CONFIGS.get(dataset)
    if folder is None:
        return None
    config_path = "" if folder == "fashion-mnist" else f" --config-path scripts/linear/{folder}"
    main = Path(__file__).resolve().parents[2] / "main_linear.py"
    shown = os.path.relpath(main)  # as typed from the repo root; absolute from elsewhere
    shown = main if shown.startswith("..") else shown
    held_out = f" data.holdout={holdout}" if holdout else ""
    return f"python {shown}{config_path} --config-name cjepa.yaml{held_out}"
