"""The torch offline evaluation against scikit-learn on the same features: logistic regression
(standardised, C=1) within half a point, the distance-weighted cosine kNN vote for vote, with no
warning raised on the way; Fashion-MNIST's batched transform against the per-image one."""

import warnings

import numpy as np
import pytest
import torch
from cjepa_helpers import compose_config, write_idx
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from solo_cjepa.tools.logreg import logreg_top1, standardise
from solo_cjepa.tools.offline_eval import (
    WholeSetBatches,
    eval_loaders,
    evaluate_features,
    knn_top1,
)


@pytest.fixture
def blobs():
    """Overlapping classes in 40 dims, on different scales and with a constant column, so the
    standardisation and the regularisation both matter."""
    x, y = make_classification(
        n_samples=1500,
        n_features=40,
        n_informative=12,
        n_classes=5,
        n_clusters_per_class=2,
        class_sep=0.8,
        random_state=0,
    )
    x = x * torch.logspace(-2, 2, 40).numpy()
    x[:, 3] = 7.0
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y)
    return (x[:1000], y[:1000]), (x[1000:], y[1000:])


def sklearn_scores(train, val):
    train_x, train_y, val_x, val_y = (t.numpy() for t in (*train, *val))
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    logreg.fit(train_x, train_y)
    knn = KNeighborsClassifier(n_neighbors=20, metric="cosine", weights="distance")
    knn.fit(train_x, train_y)
    return 100 * logreg.score(val_x, val_y), 100 * knn.score(val_x, val_y)


def test_matches_scikit_learn_on_the_same_features(blobs):
    train, val = blobs
    sk_logreg, sk_knn = sklearn_scores(train, val)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = evaluate_features(train, val)
    assert abs(scores["offline_logreg_top1"] - sk_logreg) <= 0.5
    assert scores["offline_knn_top1"] == pytest.approx(sk_knn, abs=0.2)  # one float tie at most
    assert 1 <= scores["feature_rank"] <= 40
    # chunking the queries changes nothing; labels need not be 0..C-1
    relabelled = [(x, y * 3 + 1) for x, y in (train, val)]
    assert knn_top1(*relabelled, chunk=7) == scores["offline_knn_top1"]


def test_logreg_weights_are_scikit_learns_optimum(blobs):
    # the same objective: at scikit-learn's well-converged fit both predict alike everywhere
    train, val = blobs
    sk = LogisticRegression(max_iter=5000, tol=1e-8)
    train_s, val_s = standardise(train[0], val[0])
    sk.fit(train_s.numpy(), train[1].numpy())
    agreement = (torch.from_numpy(sk.predict(val_s.numpy())) == val[1]).float().mean() * 100
    assert logreg_top1(train, val, tolerance=1e-6) == pytest.approx(agreement.item(), abs=0.21)


def test_exact_match_outvotes_the_other_neighbours():
    train_x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [1.0, 0.02], [0.0, 1.0]])
    train_y = torch.tensor([0, 1, 1, 1])
    val = (torch.tensor([[2.0, 0.0]]), torch.tensor([0]))  # same direction as the class-0 point
    assert knn_top1((train_x, train_y), val, k=3) == 100.0
    sk = KNeighborsClassifier(n_neighbors=3, metric="cosine", weights="distance")
    assert sk.fit(train_x.numpy(), train_y.numpy()).predict(val[0].numpy())[0] == 0


def test_whole_batches_equal_the_loader_of_single_images(tmp_path):
    # Fashion-MNIST is evaluated batch by batch; the transform must give what per-image PIL does
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 10)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    cfg = compose_config(
        "pretrain",
        "fashion-mnist",
        "cjepa",
        [f"data.train_path={folder}", f"data.val_path={folder}", "data.num_workers=0"],
    )
    train_batches, val_batches = eval_loaders(cfg, batch_size=4)
    assert isinstance(train_batches, WholeSetBatches)
    reference = DataLoader(val_batches.dataset, batch_size=4)
    for (images, labels), (expected, expected_labels) in zip(val_batches, reference):
        assert torch.allclose(images, expected, atol=1e-6) and torch.equal(labels, expected_labels)
    assert sum(len(labels) for _, labels in train_batches) == 40


@pytest.mark.parametrize("bf16", [False, True])
def test_features_in_bf16_stay_close_to_float32(monkeypatch, bf16):
    # on AMX CPUs and bf16 GPUs the features are extracted under autocast: float32 out, close to
    # a plain float32 forward; elsewhere exactly that forward
    from solo_cjepa.tools import offline_eval
    from solo_cjepa.vit import vit_micro

    monkeypatch.setattr(offline_eval, "fast_bf16", lambda device: bf16)
    torch.manual_seed(0)
    encoder = vit_micro(img_size=28, patch_size=4, class_token=False, global_pool="avg").eval()
    images, labels = torch.randn(24, 3, 28, 28), torch.arange(24) % 3
    with torch.no_grad():
        reference = encoder(images)
    loader = [(images[:16], labels[:16]), (images[16:], labels[16:])]
    features, extracted_labels = offline_eval.extract_features(encoder, loader)
    assert features.dtype == torch.float32 and torch.equal(extracted_labels, labels)
    error = ((features - reference).norm() / reference.norm()).item()
    assert (0 < error < 1e-2) if bf16 else error == 0
