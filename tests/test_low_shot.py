"""Low-shot probes: each setting's mean over draws is scikit-learn's StandardScaler +
LogisticRegression fitted on the same subsets (within 0.3 points), and the subsets are
class-balanced, nested, the same for the same draw and different across draws; one that cannot
be drawn is left out."""

import statistics

import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from solo_cjepa.errors import ConfigError
from solo_cjepa.tools.low_shot import (
    LowShot,
    balanced_subset,
    class_orders,
    low_shot_scores,
    per_class,
)


@pytest.fixture(scope="module")
def blobs():
    """5 overlapping classes in 32 dims on different scales, labels 3, 7, ..., 19 (not 0..C-1),
    2000 training images (400 a class: 1 % is 4 a class, 10 % 40) and 1000 to score on."""
    x, y = make_classification(
        n_samples=3000,
        n_features=32,
        n_informative=10,
        n_classes=5,
        n_clusters_per_class=1,
        class_sep=1.0,
        weights=None,
        flip_y=0.0,
        random_state=1,
    )
    x = torch.from_numpy(x * torch.logspace(-1, 1, 32).numpy()).float()
    y = torch.from_numpy(y) * 4 + 3
    order = torch.argsort(torch.rand(3000, generator=torch.Generator().manual_seed(0)))
    x, y = x[order], y[order]
    # an exactly balanced training set, so the fractions have exact per-class counts
    picks = torch.cat([torch.nonzero(y == c).flatten()[:400] for c in torch.unique(y)])
    rest = torch.ones(3000, dtype=torch.bool)
    rest[picks] = False
    return (x[picks], y[picks]), (x[rest][:1000], y[rest][:1000])


def sklearn_top1(train, val, picks) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(train[0][picks].numpy(), train[1][picks].numpy())
    return 100 * model.score(val[0].numpy(), val[1].numpy())


def test_each_setting_matches_scikit_learn_on_the_same_subsets(blobs):
    train, val = blobs
    low_shot = LowShot(fractions=(0.01, 0.1), shots=(1, 5), draws=3)
    scores = low_shot_scores(train, val, low_shot)
    for setting, fraction in low_shot.settings().items():
        count = per_class(train[1], setting, fraction)
        reference = [
            sklearn_top1(train, val, balanced_subset(class_orders(train[1], d), count))
            for d in range(3)
        ]
        # a few of 1000 validation images may flip where two optima differ in the last digits
        assert scores[f"offline_logreg_{setting}_top1"] == pytest.approx(
            statistics.mean(reference), abs=0.3
        ), setting
        assert scores[f"offline_logreg_{setting}_top1_std"] == pytest.approx(
            statistics.stdev(reference), abs=0.3
        ), setting
    assert set(scores) == {
        f"offline_logreg_{s}_top1{tail}"
        for s in ("1pct", "10pct", "1shot", "5shot")
        for tail in ("", "_std")
    }
    # more labels help on these features; one draw has no spread
    assert scores["offline_logreg_10pct_top1"] > scores["offline_logreg_1shot_top1"]
    one = low_shot_scores(train, val, LowShot(fractions=(), shots=(5,), draws=1))
    assert set(one) == {"offline_logreg_5shot_top1", "offline_logreg_5shot_top1_std"}
    assert one["offline_logreg_5shot_top1_std"] is None


def test_draws_are_class_balanced_nested_and_seeded(blobs):
    (_, labels), _ = blobs
    assert per_class(labels, "1pct", 0.01) == 4 and per_class(labels, "10pct", 0.1) == 40
    assert per_class(labels, "5shot", None) == 5
    subsets = {}
    for draw in (0, 1):
        orders = class_orders(labels, draw)
        small, large = (balanced_subset(orders, k) for k in (4, 40))
        for subset, k in ((small, 4), (large, 40)):
            counts = torch.unique(labels[subset], return_counts=True)[1]
            assert counts.tolist() == [k] * 5 and len(set(subset.tolist())) == 5 * k
        assert set(small.tolist()) <= set(large.tolist())
        assert torch.equal(balanced_subset(class_orders(labels, draw), 40), large)
        subsets[draw] = set(large.tolist())
    assert subsets[0] != subsets[1]


def test_settings_that_cannot_be_drawn_say_so(blobs, capsys):
    train, val = blobs
    scores = low_shot_scores(train, val, LowShot(fractions=(), shots=(1, 401), draws=2))
    assert scores["offline_logreg_401shot_top1"] is None and scores["offline_logreg_1shot_top1"]
    assert scores["offline_logreg_401shot_top1_std"] is None
    printed = capsys.readouterr().err
    assert "401shot left out: it needs 401 training images of every class" in printed
    with pytest.raises(ConfigError, match=r"--fractions must lie in \(0, 1\)"):
        LowShot(fractions=(1.5,))
    with pytest.raises(ConfigError, match="--draws must be >= 1"):
        LowShot(draws=0)
