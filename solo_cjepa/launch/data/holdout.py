"""The validation split carved from the training images (``data.holdout``): a class-stratified,
fixed share of the training set that pretraining never sees, on which the online probes and the
offline evaluation are scored instead of the test set; ``data.fraction`` then subsamples the rest.
"""

import copy
from typing import Callable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

# Fixed, not the run's ``seed``: every method and every seed of a study holds out the same images,
# so their scores on them are comparable and paired by seed.
HOLDOUT_SEED = 0
FRACTION_SEED = 42  # solo-learn's seed for data.fraction, which our subsets use too
# The per-image containers of the datasets a holdout supports: torchvision's ImageFolder
# (samples, imgs, targets) and CIFAR (data, targets), and our FashionMNIST (images, targets).
_PER_IMAGE = ("samples", "imgs", "data", "images", "targets")


def holdout_of(data: Mapping) -> float:
    """``data.holdout`` of a cfg's ``data``; 0 for runs older than the setting (their args.json)."""
    return float(data.get("holdout", 0.0) or 0.0)


def scored_split(data: Mapping) -> str:
    """What validation scores on: ``holdout`` (held-out training images) or ``test``."""
    return "holdout" if holdout_of(data) > 0 else "test"


def stratified_sample(labels: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified sample of ``fraction`` of the images (scikit-learn's
    ``train_test_split``, its ``train_size`` part)."""
    # imported here: it takes a second, which only runs with a subset or a holdout pay
    from sklearn.model_selection import train_test_split

    picked, _ = train_test_split(
        np.arange(len(labels)), train_size=fraction, stratify=np.asarray(labels), random_state=seed
    )
    return np.sort(picked)


def take(dataset: Dataset, indices: np.ndarray, transform: Optional[Callable] = None) -> Dataset:
    """A shallow copy of ``dataset`` with only the images at ``indices`` (and ``transform`` if
    given); ``dataset`` itself is left as it was."""
    part = copy.copy(dataset)
    for name in _PER_IMAGE:
        values = getattr(dataset, name, None)
        if isinstance(values, torch.Tensor):
            setattr(part, name, values[torch.as_tensor(indices)])
        elif isinstance(values, np.ndarray):
            setattr(part, name, values[indices])
        elif values is not None:
            setattr(part, name, [values[i] for i in indices])
    if transform is not None:
        part.transform = transform
    return part


def split_holdout(
    dataset: Dataset, holdout: float, fraction: float, val_transform: Optional[Callable] = None
) -> Tuple[Dataset, Dataset]:
    """``(train, held_out)`` of a labelled training set: ``holdout`` of its images, stratified by
    class, under ``val_transform``; and the rest, of which ``fraction`` (in (0, 1), else all)."""
    labels = np.asarray(dataset.targets)
    held = stratified_sample(labels, holdout, HOLDOUT_SEED)
    rest = np.setdiff1d(np.arange(len(labels)), held)
    if 0 < fraction < 1:
        rest = rest[stratified_sample(labels[rest], fraction, FRACTION_SEED)]
    return take(dataset, rest), take(dataset, held, val_transform)
