"""The comparison's figures as PNG files: online accuracies against epoch and against wall-clock,
each run's loss terms, and the collapse monitors (feature std and effective rank).
"""

from pathlib import Path
from typing import List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CPU server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from solo_cjepa.tools.compare.metrics import Rows, curve, loss_keys  # noqa: E402

Runs = Sequence[Tuple[str, Rows]]
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


def _panels(runs: Runs, x: str, ys: Sequence[Tuple[str, str]], xlabel: str, path: Path, scale=1.0):
    fig, axes = plt.subplots(1, len(ys), figsize=(5.5 * len(ys), 4), squeeze=False)
    for ax, (y, ylabel) in zip(axes[0], ys):
        for name, rows in runs:
            xs, values = curve(rows, x, y)
            if values:
                marker = "o" if len(xs) < 30 else None
                ax.plot([v * scale for v in xs], values, marker=marker, label=name)
        _style(ax, xlabel, ylabel)
    return _save(fig, path)


def _losses(runs: Runs, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], runs):
        positive = True
        for key in loss_keys(rows):
            xs, values = curve(rows, "step", key)
            ax.plot(xs, values, label=key[len("train_") : -len("_step")])
            positive = positive and min(values, default=1) > 0
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
