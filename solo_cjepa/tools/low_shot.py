"""Low-shot linear probes: the full-label probe's logistic regression (:mod:`.logreg`) fitted on
class-balanced subsets of the training labels (a share of them, or a few images per class),
averaged over seeded draws of those subsets, with their spread.
"""

import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from solo_cjepa.errors import ConfigError, note
from solo_cjepa.tools.logreg import Labelled, logreg_top1


@dataclass(frozen=True)
class LowShot:
    """Which subsets: ``fractions`` of the training labels (1 % and 10 %: I-JEPA's low-shot
    setting and a milder one) and ``shots`` images per class, each drawn ``draws`` times."""

    fractions: Sequence[float] = (0.01, 0.1)
    shots: Sequence[int] = (1, 5, 10)
    draws: int = 3

    def __post_init__(self):
        if not all(0 < f < 1 for f in self.fractions):
            raise ConfigError(f"--fractions must lie in (0, 1), got {list(self.fractions)}")
        if not all(isinstance(k, int) and k >= 1 for k in self.shots):
            raise ConfigError(f"--shots must be whole numbers >= 1, got {list(self.shots)}")
        if self.draws < 1:
            raise ConfigError(f"--draws must be >= 1, got {self.draws}")

    def settings(self) -> Dict[str, Optional[float]]:
        """Setting name -> the fraction it draws (None for a number of shots)."""
        named: Dict[str, Optional[float]] = {fraction_name(f): f for f in self.fractions}
        return {**named, **{f"{k}shot": None for k in self.shots}}


def fraction_name(fraction: float) -> str:
    """``0.01`` -> ``1pct``, ``0.005`` -> ``0.5pct``."""
    return f"{100 * fraction:g}pct"


def metric_name(setting: str) -> str:
    """The key of a setting's top-1 in the evaluation's numbers: ``offline_logreg_1pct_top1``."""
    return f"offline_logreg_{setting}_top1"


def class_orders(labels: torch.Tensor, draw: int) -> List[torch.Tensor]:
    """Draw ``draw``'s random order of each class's indices into ``labels`` (classes ascending),
    from a generator seeded with ``draw`` alone: every run and encoder scored on the same
    training set gets the same subsets. A setting takes the first images of each order, so a
    draw's smaller subsets lie inside its larger ones."""
    generator = torch.Generator().manual_seed(draw)
    labels = labels.cpu()
    orders = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        orders.append(members[torch.randperm(len(members), generator=generator)])
    return orders


def per_class(labels: torch.Tensor, setting: str, fraction: Optional[float]) -> int:
    """Images per class of ``setting``: a ``fraction`` of the labels split evenly over the
    classes (at least one each), or the setting's shots."""
    if fraction is None:
        return int(setting.removesuffix("shot"))
    return max(1, round(fraction * len(labels) / len(torch.unique(labels))))


def balanced_subset(orders: Sequence[torch.Tensor], count: int) -> Optional[torch.Tensor]:
    """The first ``count`` indices of each class's order; None when a class has fewer."""
    if count > min(len(order) for order in orders):
        return None
    return torch.cat([order[:count] for order in orders])


def low_shot_scores(
    train: Labelled, val: Labelled, low_shot: LowShot = LowShot()
) -> Dict[str, Optional[float]]:
    """Per setting of ``low_shot``, the mean top-1 (%) on ``val`` over its draws of the logistic
    regression fitted on a class-balanced subset of ``train`` (standardised by that subset, as
    the full-label probe is by the whole set), and the draws' sample std (``<metric>_std``;
    None for one draw). A setting that needs more images than a class has is None, with a note
    (a tiny test set must not cost the other numbers)."""
    train_x, train_y = train
    settings = low_shot.settings()
    top1s: Dict[str, List[float]] = {setting: [] for setting in settings}
    for draw in range(low_shot.draws):
        orders = class_orders(train_y, draw)
        for setting, fraction in settings.items():
            picks = balanced_subset(orders, per_class(train_y, setting, fraction))
            if picks is not None:
                picks = picks.to(train_y.device)
                top1s[setting].append(logreg_top1((train_x[picks], train_y[picks]), val))
    scores: Dict[str, Optional[float]] = {}
    for setting, values in top1s.items():
        if not values:
            count = per_class(train_y, setting, settings[setting])
            note(f"low-shot {setting} left out: it needs {count} training images of every class")
        scores[metric_name(setting)] = statistics.mean(values) if values else None
        spread = statistics.stdev(values) if len(values) > 1 else None
        scores[f"{metric_name(setting)}_std"] = spread
    return scores
