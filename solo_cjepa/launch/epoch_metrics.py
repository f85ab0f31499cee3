"""Reduces a run's epoch metrics on every process at one point, before any other callback reads
them: Lightning reduces a ``sync_dist=True`` metric lazily at its first read, so a first read on
one process only (the progress bar, a summary) is a collective the other processes never join.
"""

from lightning.pytorch import Callback, LightningModule, Trainer


class ReduceEpochMetrics(Callback):
    """Reads ``trainer.callback_metrics`` on every process in ``on_train_epoch_end``: every epoch
    metric is reduced there, once, in the order it was logged (the same on every process), and
    later reads anywhere return the cached values without a collective. It goes after the
    callbacks that log at an epoch's end and before the first that reads on some processes only.

    Validation needs no such hook: Lightning reduces its metrics on every process before the
    ``on_validation_end`` hooks, the first that read them.
    """

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.callback_metrics  # noqa: B018  (the read is the reduction)
