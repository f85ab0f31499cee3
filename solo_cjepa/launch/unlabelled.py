"""Pretraining on unlabelled images (``data.no_labels=True``): solo's methods always train an
online classifier on the training labels, which are all -1 there, so its loss is NaN at every
step. Here it learns nothing and logs nothing.
"""

from typing import Any, Dict, Type

import torch
from solo.methods.base import BaseMethod

# What BaseMethod.training_step logs for its online classifier.
CLASSIFIER_METRICS = ("train_class_loss", "train_acc1", "train_acc5")


def without_online_classifier(method: Type[BaseMethod]) -> Type[BaseMethod]:
    """``method`` whose online classifier contributes a zero loss and no metrics."""

    class Unlabelled(method):
        def _base_shared_step(self, X: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
            out = super()._base_shared_step(X, targets)
            out["loss"] = out["logits"].sum() * 0.0  # keeps the graph, no gradient
            return out

        def log_dict(self, dictionary, *args, **kwargs) -> None:
            kept = {k: v for k, v in dictionary.items() if k not in CLASSIFIER_METRICS}
            if kept:
                super().log_dict(kept, *args, **kwargs)

    Unlabelled.__name__ = Unlabelled.__qualname__ = method.__name__
    return Unlabelled
