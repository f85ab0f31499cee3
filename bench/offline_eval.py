"""Time of the comparison's offline evaluation on a dataset's whole train and validation sets, for
the raw-pixel floor and an untrained ViT: ``python3 -m bench.offline_eval``. Prints the feature
extraction, the torch logistic regression and kNN, and scikit-learn's (the protocol before) on the
same features, with both top-1s.
"""

import argparse
import os
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.__main__ import cpu_name
from solo_cjepa.launch.run import untrained_encoder
from solo_cjepa.monitors import effective_rank
from solo_cjepa.tools.compare.configs import compose_run
from solo_cjepa.tools.offline_eval import (
    Labelled,
    eval_loaders,
    extract_features,
    flat_pixels,
    knn_top1,
    logreg_top1,
)


def sklearn_logreg_top1(train: Labelled, val: Labelled, max_iter: int) -> float:
    """The comparison's logistic regression before: scikit-learn, lbfgs, ``max_iter`` iterations."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    model.fit(train[0].cpu().numpy(), train[1].cpu().numpy())
    return 100.0 * model.score(val[0].cpu().numpy(), val[1].cpu().numpy())


def sklearn_knn_top1(train: Labelled, val: Labelled, k: int = 20) -> float:
    """The comparison's kNN before: scikit-learn, brute-force cosine, distance-weighted."""
    model = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="distance")
    model.fit(train[0].cpu().numpy(), train[1].cpu().numpy())
    return 100.0 * model.score(val[0].cpu().numpy(), val[1].cpu().numpy())


def timed(fn: Callable, *args) -> Tuple[object, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def bench_one(name: str, features, loaders, device, sklearn_iter: Optional[int]) -> Dict:
    train_loader, val_loader = loaders
    (train, val), extract_s = timed(
        lambda: (
            extract_features(features, train_loader, device),
            extract_features(features, val_loader, device),
        )
    )
    logreg, logreg_s = timed(logreg_top1, train, val)
    knn, knn_s = timed(knn_top1, train, val)
    _, rank_s = timed(effective_rank, val[0])
    after = extract_s + logreg_s + knn_s + rank_s
    print(
        f"{name}: {len(train[0])}+{len(val[0])} x {train[0].shape[1]} features; extraction "
        f"{extract_s:.1f} s, logreg {logreg_s:.1f} s ({logreg:.2f} %), kNN {knn_s:.1f} s "
        f"({knn:.2f} %), rank {rank_s:.1f} s; torch total {after:.1f} s",
        flush=True,
    )
    if sklearn_iter:
        sk_logreg, sk_logreg_s = timed(sklearn_logreg_top1, train, val, sklearn_iter)
        sk_knn, sk_knn_s = timed(sklearn_knn_top1, train, val)
        before = extract_s + sk_logreg_s + sk_knn_s + rank_s
        print(
            f"{name}: scikit-learn logreg {sk_logreg_s:.1f} s ({sk_logreg:.2f} %, max_iter "
            f"{sklearn_iter}), kNN {sk_knn_s:.1f} s ({sk_knn:.2f} %); total {before:.1f} s; "
            f"torch {before / after:.1f}x faster",
            flush=True,
        )


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.offline_eval", description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist", help="scripts/pretrain/<dataset>")
    parser.add_argument("--config", default="cjepa", help="yaml whose backbone and data to use")
    parser.add_argument(
        "--sklearn-iter",
        type=int,
        default=100,
        help="scikit-learn's max_iter (the comparison's before); 0 skips scikit-learn",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the config")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = compose_run(args.dataset, args.config, args.overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(
        f"device {device} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    loaders = eval_loaders(cfg)
    bench_one("raw pixels", flat_pixels, loaders, device, args.sklearn_iter)
    encoder = untrained_encoder(cfg).to(device).eval()
    bench_one(f"random init ({cfg.backbone.name})", encoder, loaders, device, args.sklearn_iter)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
