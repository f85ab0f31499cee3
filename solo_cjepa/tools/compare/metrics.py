"""Reads a run's CSV-logger ``metrics.csv`` into curves and the end-of-run numbers of the table.

Lightning writes one row per logging call with empty cells for the keys it did not log, so a
curve is the rows where both of its keys are present.
"""

import csv
from pathlib import Path
from typing import Dict, List, Optional, Tuple

Rows = List[Dict[str, float]]


def read_metrics(path: Path) -> Rows:
    with open(path, newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def drop_partial_epoch_knn(rows: Rows) -> Rows:
    """``rows`` without the kNN accuracies of validations that followed a mid-epoch stop.

    solo's kNN bank holds the training features of the current epoch only, so after a time budget
    stops a run a few steps into an epoch its last validation scores against a bank of a few
    batches. The linear probes' numbers of that validation stay.
    """

    def partial(row: Dict[str, float]) -> bool:
        epochs = row.get("val_epochs_done")
        return epochs is not None and abs(epochs - round(epochs)) > 1e-6

    return [
        {k: v for k, v in row.items() if not k.startswith("val_knn_")} if partial(row) else row
        for row in rows
    ]


def curve(rows: Rows, x: str, y: str) -> Tuple[List[float], List[float]]:
    """``(xs, ys)`` over the rows that hold both ``x`` and ``y``."""
    pairs = [(row[x], row[y]) for row in rows if x in row and y in row]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def last(rows: Rows, key: str) -> Optional[float]:
    values = [row[key] for row in rows if key in row]
    return values[-1] if values else None


def loss_keys(rows: Rows) -> List[str]:
    """The self-supervised loss terms a method logged per step (not its online classifiers');
    BYOL logs its loss as ``neg_cos_sim``."""
    keys = {k for row in rows for k in row}
    return sorted(
        k
        for k in keys
        if k.startswith("train_")
        and k.endswith("_step")
        and ("loss" in k or "neg_cos_sim" in k)
        and "class" not in k
    )


def summary(rows: Rows) -> Dict[str, Optional[float]]:
    """End-of-run numbers: epochs, training images/s, peak memory and the online accuracies
    (``val_acc1``: solo's probe on ``backbone``; ``momentum_val_acc1``: on the EMA encoder)."""
    images, train_time = last(rows, "train_images"), last(rows, "train_time_s")
    peaks = [row["peak_memory_mb"] for row in rows if "peak_memory_mb" in row]
    return {
        "epochs": last(rows, "epochs_done"),
        "train_time_s": train_time,
        "images_per_s": images / train_time if images and train_time else None,
        "peak_memory_mb": max(peaks) if peaks else None,
        "online_linear_top1": last(rows, "val_acc1"),
        "online_linear_top1_target": last(rows, "momentum_val_acc1"),
        "online_knn_top1": last(rows, "val_knn_acc1"),
    }
