"""Offline frozen-feature evaluation in torch, on the encoder's device: scikit-learn's protocol
(logistic regression on standardised features, distance-weighted cosine kNN, k = 20), the same
logistic regression on few labels (:mod:`.low_shot`) and the effective rank, for trained
encoders, untrained ones, raw pixels and any checkpoint alike.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from solo.methods import METHODS
from solo.methods.base import BaseMethod, BaseMomentumMethod
from torch import nn
from torch.utils.data import DataLoader, Dataset

from solo_cjepa.errors import ConfigError, exit_on_config_error, note
from solo_cjepa.launch.checkpoints.loading import find_checkpoint, load_pretrained_backbone
from solo_cjepa.launch.data.fashion_mnist import FashionMNIST
from solo_cjepa.launch.data.holdout import holdout_of, scored_split
from solo_cjepa.launch.data.loaders import classification_datasets, pretrain_eval_transform
from solo_cjepa.launch.hardware import fast_bf16
from solo_cjepa.monitors import effective_rank
from solo_cjepa.tools.logreg import Labelled, logreg_top1
from solo_cjepa.tools.low_shot import LowShot, low_shot_scores

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
JEPA_METHODS = ("cjepa",)


def evaluated_encoder(method: str) -> str:
    """``target`` for JEPA methods, whose EMA target encoder is what I-JEPA evaluates; ``context``
    (solo's online ``backbone``, what its linear evaluation loads) for every other method."""
    return "target" if method in JEPA_METHODS else "context"


def offline_encoders(method: str) -> Tuple[str, ...]:
    """Every encoder of ``method``: ``target`` (the EMA ``momentum_backbone``) and ``context``
    (solo's ``backbone``) for solo's momentum methods (cjepa, byol, ...), ``context`` alone for
    the rest (vicreg, ...)."""
    has_target = issubclass(METHODS[method], BaseMomentumMethod)
    return ("target", "context") if has_target else ("context",)


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


@torch.inference_mode()
def extract_features(
    features: FeatureFn, loader: Iterable, device: Union[str, torch.device] = "cpu"
) -> Labelled:
    """Runs ``features`` over every ``(images, labels)`` batch of ``loader`` on ``device``:
    ``([N, D] float32, [N])``, left on ``device``. Under bfloat16 autocast where that is faster
    (:func:`fast_bf16`): the features move by ~0.2 % of their norm, the top-1s by a few images
    in 10 000, and the forward takes half the time."""
    device = torch.device(device)
    xs, ys = [], []
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast_bf16(device)):
        for images, labels in loader:
            xs.append(features(images.to(device, non_blocking=True)).float())
            ys.append(labels.to(device))
    return torch.cat(xs), torch.cat(ys)


class WholeSetBatches:
    """The whole of an in-memory dataset in order, in batches transformed at once (see
    :meth:`FashionMNIST.batches`): iterable like its ``DataLoader``, with the same ``dataset``."""

    def __init__(self, dataset: FashionMNIST, batch_size: int):
        self.dataset = dataset
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        return self.dataset.batches(self.batch_size)


def eval_loaders(cfg: DictConfig, batch_size: int = 512) -> Tuple[Iterable, Iterable]:
    """The whole train and validation sets of a pretraining cfg (``data.fraction`` ignored; with
    ``data.holdout``, the training set without the held-out images and those images), through
    its online validation's transform: training crop size and normalisation, no augmentation.
    Fashion-MNIST, held in memory, is transformed batch by batch (a PIL image per sample would
    take most of an evaluation's time)."""
    transform = pretrain_eval_transform(cfg)
    full = cfg.copy()
    full.data.fraction = -1.0
    if full.data.get("val_path") is None or full.data.get("no_labels", False):
        raise ConfigError(
            "the offline evaluation needs labelled data and a validation set: set data.val_path "
            f"or data.holdout (and data.no_labels=False) for data.dataset={cfg.data.dataset!r}"
        )
    train, val = classification_datasets(full, transform, transform)
    if isinstance(train, FashionMNIST):
        return WholeSetBatches(train, batch_size), WholeSetBatches(val, batch_size)
    workers = cfg.data.num_workers
    return tuple(DataLoader(ds, batch_size=batch_size, num_workers=workers) for ds in (train, val))


def evaluation_device(features: FeatureFn) -> torch.device:
    """Where a module's parameters are (the run's device); the raw-pixel floor: a GPU if any."""
    if isinstance(features, nn.Module):
        for param in features.parameters():
            return param.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def evaluate(
    features: FeatureFn,
    loaders: Tuple[Iterable, Iterable],
    low_shot: Optional[LowShot] = LowShot(),
) -> Dict[str, Optional[float]]:
    """:func:`evaluate_features` on ``features`` of the ``(train, val)`` loaders, on the device of
    ``features``. A module (a solo backbone: for the ViTs here, mean-pooled tokens) is put in
    eval mode first."""
    if isinstance(features, nn.Module):
        features.eval()
    device = evaluation_device(features)
    train_loader, val_loader = loaders
    return evaluate_features(
        extract_features(features, train_loader, device),
        extract_features(features, val_loader, device),
        low_shot=low_shot,
    )


@torch.no_grad()
def knn_top1(train: Labelled, val: Labelled, k: int = 20, chunk: int = 1024) -> float:
    """Top-1 (%) on ``val`` of a cosine kNN on ``train``: the ``k`` nearest training features
    vote with weight 1 / cosine distance (an exact match outvotes all others), as scikit-learn's
    ``weights="distance"``; ties go to the lowest class."""
    (train_x, train_y), (val_x, val_y) = train, val
    train_n = F.normalize(train_x.float(), dim=1)
    classes, train_y = torch.unique(train_y, return_inverse=True)
    correct = 0
    for start in range(0, len(val_x), chunk):
        query = F.normalize(val_x[start : start + chunk].float(), dim=1)
        similarity, nearest = (query @ train_n.T).topk(min(k, len(train_n)), dim=1)
        distance = (1.0 - similarity).clamp_min(0.0)
        exact = distance <= 1e-7
        weights = torch.where(exact.any(1, keepdim=True), exact.float(), 1.0 / distance)
        votes = torch.zeros(len(query), len(classes), device=query.device)
        votes.scatter_add_(1, train_y[nearest], weights)
        correct += (classes[votes.argmax(1)] == val_y[start : start + chunk]).sum().item()
    return 100.0 * correct / len(val_x)


def feature_rank(x: torch.Tensor) -> float:
    """:func:`effective_rank` of ``[N, D]`` features from the eigenvalues of their ``D x D`` Gram
    matrix (float64): the same singular values, in a fraction of an SVD's time for N >> D."""
    x = x.double()
    singular = torch.linalg.eigvalsh(x.T @ x).clamp_min(0).sqrt()
    return float(effective_rank(torch.diag(singular)))


def evaluate_features(
    train: Labelled, val: Labelled, knn_k: int = 20, low_shot: Optional[LowShot] = None
) -> Dict[str, Optional[float]]:
    """Top-1 (%) of the logistic regression and of the cosine kNN fitted on ``train`` and scored
    on ``val``, the effective rank of the validation features and, with ``low_shot``, the
    low-shot probes' top-1s (:func:`low_shot_scores`)."""
    scores = {
        "offline_logreg_top1": logreg_top1(train, val),
        "offline_knn_top1": knn_top1(train, val, knn_k),
        "feature_rank": feature_rank(val[0]),
    }
    return {**scores, **(low_shot_scores(train, val, low_shot) if low_shot else {})}


def evaluate_checkpoint(
    path: str,
    cfg: DictConfig,
    encoders: Sequence[str] = ("target",),
    low_shot: Optional[LowShot] = LowShot(),
) -> Dict[str, Dict[str, Optional[float]]]:
    """:func:`evaluate` on each of the ``encoders`` (``target``: what I-JEPA evaluates, and/or
    ``context``) of checkpoint ``path``, read strictly into ``cfg``'s backbone, on ``cfg``'s data
    (a pretraining cfg such as ``scripts/pretrain/<dataset>/ijepa.yaml``), by encoder."""
    loaders = eval_loaders(cfg)
    scores = {}
    for encoder in encoders:
        backbone = BaseMethod._BACKBONES[cfg.backbone.name](
            method=cfg.method, **cfg.backbone.kwargs
        )
        load_pretrained_backbone(backbone, path, encoder)
        scores[encoder] = evaluate(backbone, loaders, low_shot)
    return scores


def run_holdout(checkpoint: str) -> Optional[float]:
    """The ``data.holdout`` that the run of ``checkpoint`` trained with (from its ``args.json``),
    ``None`` for a checkpoint without one (an I-JEPA ``.pth.tar``)."""
    args = Path(checkpoint).parent / "args.json"
    return holdout_of(json.loads(args.read_text())["data"]) if args.is_file() else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m solo_cjepa.evaluate CKPT [--encoder] [--holdout] [--[no-]low-shot]
    [--fractions] [--shots] [--draws] [--dataset] [--config] [-- overrides]``: the comparison's
    config lookup, this module's evaluation, one JSON line."""
    from solo_cjepa.tools.compare.__main__ import split_overrides
    from solo_cjepa.tools.compare.configs import compose_run

    parser = argparse.ArgumentParser(
        prog="python -m solo_cjepa.evaluate",
        description="Offline evaluation (logistic regression on all labels and on few, kNN, "
        "effective rank) of one or both encoders of a checkpoint, ours or an I-JEPA .pth.tar, "
        "on the data and backbone of a shipped pretraining config; hydra overrides of that "
        "config go after '--'.",
    )
    parser.add_argument("checkpoint", help="a .ckpt, a run folder or an I-JEPA .pth.tar")
    parser.add_argument(
        "--encoder",
        choices=("target", "context", "both"),
        default="target",
        help="target (EMA; what I-JEPA evaluates, the default), context, or both (one JSON line "
        "with each encoder's scores under its name)",
    )
    parser.add_argument(
        "--holdout",
        type=float,
        metavar="F",
        help="data.holdout: fit on the training images but a class-stratified share F, and score "
        "on that share instead of the test set (default: the run's own data.holdout, from the "
        "args.json next to the checkpoint; else the config's)",
    )
    defaults = LowShot()
    parser.add_argument(
        "--low-shot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fit the logistic regression on class-balanced subsets of the training labels "
        "(default: on); each setting gives offline_logreg_<setting>_top1, the mean over the "
        "draws, and _std, their spread",
    )
    parser.add_argument(
        "--fractions",
        nargs="*",
        type=float,
        default=list(defaults.fractions),
        metavar="F",
        help="shares of the training labels, split evenly over the classes (default: "
        f"{' '.join(map(str, defaults.fractions))}, i.e. 1pct and 10pct)",
    )
    parser.add_argument(
        "--shots",
        nargs="*",
        type=int,
        default=list(defaults.shots),
        metavar="K",
        help=f"images per class (default: {' '.join(map(str, defaults.shots))})",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=defaults.draws,
        help=f"label subsets drawn per setting, seeded 0, 1, ... (default: {defaults.draws})",
    )
    parser.add_argument(
        "--dataset", default="fashion-mnist", help="config folder scripts/pretrain/<dataset>"
    )
    parser.add_argument("--config", default="ijepa", help="config name in that folder")
    flags, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(flags)
    with exit_on_config_error():
        low_shot = LowShot(tuple(args.fractions), tuple(args.shots), args.draws)
        path = args.checkpoint
        if Path(path).is_dir():  # a run folder: its newest checkpoint
            path = str(find_checkpoint(path))
        trained = run_holdout(path)
        holdout = trained if args.holdout is None else args.holdout
        chosen = [] if holdout is None else [f"++data.holdout={holdout}"]
        cfg = compose_run(args.dataset, args.config, [*chosen, *overrides])
        if trained is not None and holdout_of(cfg.data) not in (0, trained):
            note(
                f"data.holdout={holdout_of(cfg.data)}, but the run held out "
                f"data.holdout={trained}: some of the images scored on may be ones it trained on"
            )
        encoders = ("target", "context") if args.encoder == "both" else (args.encoder,)
        scores = evaluate_checkpoint(path, cfg, encoders, low_shot if args.low_shot else None)
    result = {
        "checkpoint": args.checkpoint,
        "encoder": args.encoder,
        "split": scored_split(cfg.data),
    }
    # one encoder: its scores at the top level, as before "both" existed
    print(json.dumps({**result, **(scores if args.encoder == "both" else scores[args.encoder])}))
    return 0
