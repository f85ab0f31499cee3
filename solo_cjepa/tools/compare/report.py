"""The comparison table, as ``report.csv`` (one row per run and per floor, raw numbers) and as
``report.md`` (rounded, with the protocol, the failures and the figures).
"""

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from solo_cjepa.tools.compare.runner import format_duration

# (csv column, markdown header, digits); None digits: text
COLUMNS = (
    ("method", "method", None),
    ("epochs", "epochs", 2),
    ("wall_time_s", "wall time", "duration"),
    ("images_per_s", "train img/s", 0),
    ("peak_memory_mb", "peak mem (MiB)", 0),
    ("online_linear_top1", "online linear top-1", 1),
    ("online_linear_top1_target", "online linear top-1, target enc.", 1),
    ("online_knn_top1", "online kNN top-1", 1),
    ("offline_logreg_top1", "offline logreg top-1", 1),
    ("offline_knn_top1", "offline kNN top-1", 1),
    ("feature_rank", "effective rank", 1),
    ("encoder", "offline encoder", None),
    ("status", "status", None),
)


@dataclass
class Report:
    title: str
    settings: Dict[str, str]
    rows: List[Dict[str, object]] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)
    plots: Sequence[Path] = ()


def _cell(value: object, digits) -> str:
    if value is None or value == "":
        return "–"
    if digits is None:
        return str(value)
    if digits == "duration":
        return format_duration(float(value))
    return f"{float(value):.{digits}f}"


def markdown_table(rows: Sequence[Dict[str, object]]) -> str:
    lines = [
        "| " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), d) for key, _, d in COLUMNS) + " |")
    return "\n".join(lines)


PROTOCOL = """\
- **online linear / kNN top-1**: solo-learn's online probes, trained and scored during
  pretraining on the full validation set at each epoch end (last value shown). They read solo's
  `backbone`, i.e. the context encoder of C-JEPA/I-JEPA; the *target enc.* column is the probe on
  the EMA target encoder (`momentum_val_acc1`, JEPA runs with `momentum.classifier: True`). The
  kNN bank holds the epoch's training features (masked context for the JEPA methods), so kNN
  numbers come from validations that closed a whole epoch: the one after a mid-epoch time stop
  would score against a bank of the few batches since the last epoch end.
- **offline logreg / kNN top-1**: frozen mean-pooled ViT tokens of the whole train and validation
  sets (validation transform, no augmentation); scikit-learn logistic regression on standardised
  features (lbfgs, 100 iterations) and cosine kNN (k = 20, distance-weighted). The encoder is the
  EMA *target* encoder for the JEPA methods, as I-JEPA evaluates, and solo's online `backbone`
  (what `main_linear.py` loads) for the others.
- **effective rank**: RankMe (exp of the entropy of the normalised singular values) of the
  validation features used offline; **peak mem**: the training process's peak RSS (CUDA: peak
  allocated GPU memory); **train img/s**: images (not crops) per second of training batches,
  data loading included and validation excluded; **wall time**: the whole training process
  (floors: their evaluation).
- **floors**: *raw pixels* = the same offline evaluation on the normalised input pixels;
  *random init* = the same ViT, untrained (the first run's initial weights).
- **figures**: accuracies against epochs and against wall-clock since training started; each
  run's self-supervised loss terms; the collapse monitors, std and effective rank of the
  evaluated encoder's features on 256 fixed validation images every `log_every_n_steps` steps
  (their cost, about 2 %, counts as training time).
"""


def write_report(report: Report, out: Path) -> None:
    """Writes ``out/report.csv`` and ``out/report.md``."""
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[key for key, _, _ in COLUMNS])
        writer.writeheader()
        for row in report.rows:
            writer.writerow({key: row.get(key, "") for key, _, _ in COLUMNS})

    parts = [f"# {report.title}", ""]
    parts += [f"- **{key}**: {value}" for key, value in report.settings.items()]
    parts += ["", markdown_table(report.rows), ""]
    if report.failures:
        parts += ["## Failed runs", ""] + [f"- {failure}" for failure in report.failures] + [""]
    parts += ["## Protocol", "", PROTOCOL]
    if report.plots:
        parts += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in report.plots] + [""]
    (out / "report.md").write_text("\n".join(parts))


def run_row(name: str, status: str, wall_time_s: Optional[float], **numbers) -> Dict[str, object]:
    return {"method": name, "status": status, "wall_time_s": wall_time_s, **numbers}
