"""Offline frozen-feature evaluation: scikit-learn logistic regression and kNN on features of a
whole train and validation set, plus the effective rank of the validation features.

The same protocol scores a trained encoder, an untrained one and raw pixels, so the floors and the
methods in a comparison are measured alike; :func:`evaluate_checkpoint` scores one encoder of any
checkpoint (ours or an I-JEPA ``.pth.tar``), loaded as strictly as by linear evaluation.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from solo.methods.base import BaseMethod
from torch import nn
from torch.utils.data import DataLoader, Dataset

from solo_cjepa.errors import ConfigError, exit_on_config_error
from solo_cjepa.launch.checkpoints.loading import find_checkpoint, load_pretrained_backbone
from solo_cjepa.launch.data.loaders import classification_datasets, pretrain_eval_transform
from solo_cjepa.monitors import effective_rank

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
JEPA_METHODS = ("cjepa",)


def evaluated_encoder(method: str) -> str:
    """``target`` for JEPA methods, whose EMA target encoder is what I-JEPA evaluates; ``context``
    (solo's online ``backbone``, what its linear evaluation loads) for every other method."""
    return "target" if method in JEPA_METHODS else "context"


def flat_pixels(images: torch.Tensor) -> torch.Tensor:
    """The raw-pixel floor's "encoder": the (normalised) input tensor, flattened. Grey images
    copied to three channels keep one: the copies add nothing but triple the regression's cost."""
    if torch.equal(images, images[:, :1].expand_as(images)):
        images = images[:, :1]
    return images.flatten(1)


def spread_images(dataset: Dataset, count: int) -> torch.Tensor:
    """``count`` images of a labelled ``dataset``, evenly spaced over it: every class of a
    class-sorted image folder shows up, and the pick is the same every time."""
    picks = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long()
    return torch.stack([dataset[int(i)][0] for i in picks])


@torch.no_grad()
def extract_features(features: FeatureFn, loader: DataLoader) -> Tuple[np.ndarray, np.ndarray]:
    """Runs ``features`` over every ``(images, labels)`` batch of ``loader``: ``([N, D], [N])``."""
    xs, ys = [], []
    for images, labels in loader:
        xs.append(features(images).float().cpu())
        ys.append(labels.cpu())
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def eval_loaders(cfg: DictConfig, batch_size: int = 512) -> Tuple[DataLoader, DataLoader]:
    """The whole train and validation sets of a pretraining cfg (``data.fraction`` ignored),
    through its online validation's transform: training crop size and normalisation, no
    augmentation."""
    transform = pretrain_eval_transform(cfg)
    full = cfg.copy()
    full.data.fraction = -1.0
    if full.data.get("val_path") is None or full.data.get("no_labels", False):
        raise ConfigError(
            "the offline evaluation needs labelled data and a validation set: set data.val_path "
            f"(and data.no_labels=False) for data.dataset={cfg.data.dataset!r}"
        )
    train, val = classification_datasets(full, transform, transform)
    workers = cfg.data.num_workers
    return tuple(DataLoader(ds, batch_size=batch_size, num_workers=workers) for ds in (train, val))


def evaluate(features: FeatureFn, loaders: Tuple[DataLoader, DataLoader]) -> Dict[str, float]:
    """:func:`evaluate_features` on ``features`` of the ``(train, val)`` loaders. A module (a solo
    backbone: for the ViTs here, mean-pooled tokens) is put in eval mode first."""
    if isinstance(features, nn.Module):
        features.eval()
    train_loader, val_loader = loaders
    return evaluate_features(
        extract_features(features, train_loader), extract_features(features, val_loader)
    )


def evaluate_features(
    train: Tuple[np.ndarray, np.ndarray],
    val: Tuple[np.ndarray, np.ndarray],
    knn_k: int = 20,
    max_iter: int = 100,
) -> Dict[str, float]:
    """Top-1 (%) of a logistic regression and of a cosine kNN fitted on ``train`` and scored on
    ``val``, and the effective rank of the validation features.

    Features are standardised first: lbfgs then converges within ``max_iter`` on every encoder and
    on pixels, which keeps the cost of a comparison's evaluation bounded.
    """
    (train_x, train_y), (val_x, val_y) = train, val
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    logreg.fit(train_x, train_y)
    knn = KNeighborsClassifier(n_neighbors=knn_k, metric="cosine", weights="distance")
    knn.fit(train_x, train_y)
    return {
        "offline_logreg_top1": 100.0 * logreg.score(val_x, val_y),
        "offline_knn_top1": 100.0 * knn.score(val_x, val_y),
        "feature_rank": float(effective_rank(torch.from_numpy(val_x))),
    }


def evaluate_checkpoint(path: str, cfg: DictConfig, encoder: str = "target") -> Dict[str, float]:
    """:func:`evaluate` on the ``encoder`` (``target``: what I-JEPA evaluates, or ``context``) of
    checkpoint ``path``, read strictly into ``cfg``'s backbone, on ``cfg``'s data (a pretraining
    cfg such as ``scripts/pretrain/<dataset>/ijepa.yaml``)."""
    backbone = BaseMethod._BACKBONES[cfg.backbone.name](method=cfg.method, **cfg.backbone.kwargs)
    load_pretrained_backbone(backbone, path, encoder)
    return evaluate(backbone, eval_loaders(cfg))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m solo_cjepa.evaluate CKPT [--encoder] [--dataset] [--config] [-- overrides]``:
    the comparison's config lookup, this module's evaluation, one JSON line."""
    from solo_cjepa.tools.compare.__main__ import split_overrides
    from solo_cjepa.tools.compare.configs import compose_run

    parser = argparse.ArgumentParser(
        prog="python -m solo_cjepa.evaluate",
        description="Offline evaluation (logistic regression, kNN, effective rank) of one encoder "
        "of a checkpoint, ours or an I-JEPA .pth.tar, on the data and backbone of a shipped "
        "pretraining config; hydra overrides of that config go after '--'.",
    )
    parser.add_argument("checkpoint", help="a .ckpt, a run folder or an I-JEPA .pth.tar")
    parser.add_argument(
        "--encoder",
        choices=("target", "context"),
        default="target",
        help="target (EMA; what I-JEPA evaluates, the default) or context",
    )
    parser.add_argument(
        "--dataset", default="fashion-mnist", help="config folder scripts/pretrain/<dataset>"
    )
    parser.add_argument("--config", default="ijepa", help="config name in that folder")
    flags, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(flags)
    with exit_on_config_error():
        cfg = compose_run(args.dataset, args.config, overrides)
        path = args.checkpoint
        if Path(path).is_dir():  # a run folder: its newest checkpoint
            path = str(find_checkpoint(path))
        scores = evaluate_checkpoint(path, cfg, args.encoder)
    print(json.dumps({"checkpoint": args.checkpoint, "encoder": args.encoder, **scores}))
    return 0
