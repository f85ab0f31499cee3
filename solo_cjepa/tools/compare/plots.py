"""The comparison's figures as PNG files: online accuracies against epoch and against wall-clock,
each entry's loss terms, and the collapse monitors (feature std and effective rank); with several
seeds, the mean over seeds with a band of ± one standard deviation.
"""

from pathlib import Path
from typing import List, Sequence, Tuple

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: no display on a CPU server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from solo_cjepa.tools.compare.metrics import Rows, curve, loss_keys  # noqa: E402

Runs = Sequence[Tuple[str, Sequence[Rows]]]  # per entry, the metrics of each of its seeds
ACCURACIES = (("val_acc1", "online linear top-1 (%)"), ("val_knn_acc1", "online kNN top-1 (%)"))
MONITORS = (
    ("monitor_feature_std", "feature std (mean over dims)"),
    ("monitor_feature_rank", "effective rank of features"),
)


def _style(ax, xlabel: str, ylabel: str = "", title: str = "") -> None:
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize="small")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def mean_curve(seeds: Sequence[Rows], x: str, y: str) -> Tuple[np.ndarray, ...]:
    """``(xs, mean, std)`` over the seeds' curves point by point (the i-th logged point of each;
    cut to the shortest): under an epoch budget the seeds log at the same steps and epochs."""
    curves = [curve(rows, x, y) for rows in seeds]
    curves = [c for c in curves if c[1]]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    length = min(len(c[0]) for c in curves)
    xs = np.array([c[0][:length] for c in curves]).mean(0)
    ys = np.array([c[1][:length] for c in curves])
    return xs, ys.mean(0), ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(length)


def _draw(ax, seeds: Sequence[Rows], x: str, y: str, label: str, scale: float = 1.0) -> bool:
    xs, mean, std = mean_curve(seeds, x, y)
    if not len(xs):
        return False
    xs = xs * scale
    (line,) = ax.plot(xs, mean, marker="o" if len(xs) < 30 else None, label=label)
    if std.any():
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    return True


def _panels(runs: Runs, x: str, ys: Sequence[Tuple[str, str]], xlabel: str, path: Path, scale=1.0):
    fig, axes = plt.subplots(1, len(ys), figsize=(5.5 * len(ys), 4), squeeze=False)
    for ax, (y, ylabel) in zip(axes[0], ys):
        for name, seeds in runs:
            _draw(ax, seeds, x, y, name, scale)
        _style(ax, xlabel, ylabel)
    return _save(fig, path)


def _losses(runs: Runs, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.8), squeeze=False)
    for ax, (name, seeds) in zip(axes[0], runs):
        positive = True
        for key in loss_keys(seeds[0]):
            _draw(ax, seeds, "step", key, key[len("train_") : -len("_step")])
            positive = positive and min(curve(seeds[0], "step", key)[1], default=1) > 0
        if ax.has_data() and positive:
            ax.set_yscale("log")  # C-JEPA's terms differ by orders of magnitude
        _style(ax, "step", title=name)
    return _save(fig, path)


def write_plots(runs: Runs, out: Path) -> List[Path]:
    """Writes the four figures of ``runs`` (at least one) into ``out``; returns their paths."""
    return [
        _panels(runs, "val_epochs_done", ACCURACIES, "epoch", out / "accuracy_vs_epoch.png"),
        _panels(
            runs,
            "val_time_elapsed_s",
            ACCURACIES,
            "wall-clock (min)",
            out / "accuracy_vs_time.png",
            1 / 60,
        ),
        _losses(runs, out / "losses.png"),
        _panels(runs, "step", MONITORS, "step", out / "collapse.png"),
    ]
