"""The comparison table, as ``report.csv`` (one row per run and per floor, raw numbers, and with
several seeds each entry's mean, std and 95 % confidence interval) and as ``report.md`` (rounded,
mean ± interval: the runs, the offline evaluation of each encoder, its low-shot probes, the
fine-tuning, the paired differences, the protocol, failures and figures).
"""

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from solo_cjepa.tools.compare.runner import format_duration
from solo_cjepa.tools.compare.stats import Summary, paired_difference, summarise
from solo_cjepa.tools.low_shot import LowShot, metric_name

# The offline evaluation's numbers, one set per encoder: a row holds ``<metric>_<encoder>``.
ENCODERS = ("target", "context")
OFFLINE_METRICS = (
    ("offline_logreg_top1", "offline logreg top-1"),
    ("offline_knn_top1", "offline kNN top-1"),
    ("feature_rank", "effective rank"),
)
# The comparison's low-shot probes (the evaluation's default settings), and each one's spread
# over its label draws (report.csv only).
LOW_SHOT_METRICS = tuple(
    (metric_name(s), f"logreg {f'{100 * f:g} %' if f else s.replace('shot', '-shot')}")
    for s, f in LowShot().settings().items()
)
LOW_SHOT_SPREADS = tuple((f"{m}_std", f"{name}, std over draws") for m, name in LOW_SHOT_METRICS)
# what a record holds of each encoder
RECORDED_METRICS = (*OFFLINE_METRICS, *LOW_SHOT_METRICS, *LOW_SHOT_SPREADS)
# offline accuracy or rank key -> (metric, encoder)
OFFLINE_KEYS = {
    f"{m}_{e}": (m, e) for e in ENCODERS for m, _ in (*OFFLINE_METRICS, *LOW_SHOT_METRICS)
}

# (csv column, markdown header, digits); None digits: text
METHOD, STATUS = ("method", "method", None), ("status", "status", None)
RUN_COLUMNS = (
    METHOD,
    ("epochs", "epochs", 2),
    ("wall_time_s", "wall time", "duration"),
    ("images_per_s", "train img/s", 0),
    ("peak_memory_mb", "peak mem (MiB)", 0),
    ("online_linear_top1", "online linear top-1", 1),
    ("online_linear_top1_target", "online linear top-1, target enc.", 1),
    ("online_knn_top1", "online kNN top-1", 1),
    STATUS,
)
# grouped by encoder: "target: offline logreg top-1", ..., "context: offline logreg top-1", ...
OFFLINE_COLUMNS = (
    METHOD,
    *((f"{m}_{e}", f"{e}: {header}", 1) for e in ENCODERS for m, header in OFFLINE_METRICS),
    ("split", "offline split", None),
)
LOW_SHOT_COLUMNS = (
    METHOD,
    *((f"{m}_{e}", f"{e}: {header}", 1) for e in ENCODERS for m, header in LOW_SHOT_METRICS),
)
LOW_SHOT_SPREAD_COLUMNS = tuple(
    (f"{m}_{e}", f"{e}: {header}", 2) for e in ENCODERS for m, header in LOW_SHOT_SPREADS
)
FINETUNE_COLUMNS = (
    METHOD,
    ("finetune_encoder", "fine-tuned encoder", None),
    ("frozen_logreg_top1", "frozen: offline logreg top-1", 1),
    ("finetune_top1", "fine-tuned top-1", 1),
    ("finetune_epochs", "fine-tuning epochs", 2),
    ("finetune_wall_time_s", "fine-tuning time", "duration"),
)
BASE_COLUMNS = (*RUN_COLUMNS[:-1], *OFFLINE_COLUMNS[1:], STATUS)
COLUMNS = (
    *BASE_COLUMNS[:-1],
    *LOW_SHOT_COLUMNS[1:],
    *LOW_SHOT_SPREAD_COLUMNS,
    *FINETUNE_COLUMNS[1:],
    STATUS,
)
NUMBERS = tuple(key for key, _, digits in COLUMNS if digits is not None)
# what the paired difference is taken of
ACCURACIES = (
    *OFFLINE_KEYS,
    "online_linear_top1",
    "online_linear_top1_target",
    "online_knn_top1",
    "finetune_top1",
)
CSV_COLUMNS = ("method", "seed", *(key for key, _, _ in COLUMNS[1:]))
OK = ("ok", "floor")


def encoder_numbers(encoder: str, scores: Dict[str, float]) -> Dict[str, float]:
    """An offline evaluation's ``scores`` as the numbers of ``encoder`` in a row."""
    return {f"{m}_{encoder}": scores[m] for m, _ in RECORDED_METRICS if m in scores}


def floor_numbers(scores: Dict[str, float]) -> Dict[str, float]:
    """A floor's scores as the numbers of both encoders: it is a floor to either (an untrained
    ViT's two encoders are one network)."""
    return {k: v for encoder in ENCODERS for k, v in encoder_numbers(encoder, scores).items()}


@dataclass
class Report:
    title: str
    settings: Dict[str, str]
    rows: List[Dict[str, object]] = field(default_factory=list)  # one per run, then the floors
    failures: List[str] = field(default_factory=list)
    plots: Sequence[Path] = ()
    pairs: Sequence[Tuple[str, str]] = ()  # (a, b) entries whose paired difference a - b to give


def _cell(value: object, digits) -> str:
    if value is None or value == "":
        return "–"
    if digits is None:
        return str(value)
    if digits == "duration":
        return format_duration(float(value))
    return f"{float(value):.{digits}f}"


def _summary_cell(summary: Optional[Summary], digits) -> str:
    if summary is None:
        return "–"
    if summary.half_width is None:
        return _cell(summary.mean, digits)
    if digits == "duration":
        return f"{format_duration(summary.mean)} ± {format_duration(summary.half_width)}"
    return f"{summary.mean:.{digits}f} ± {summary.half_width:.{digits}f}"


def entries(rows: Sequence[Dict[str, object]]) -> Dict[str, List[Dict[str, object]]]:
    """Rows grouped by entry (``method``), in first-seen order."""
    grouped: Dict[str, List[Dict[str, object]]] = {}
    for row in rows:
        grouped.setdefault(str(row["method"]), []).append(row)
    return grouped


def summaries(runs: Sequence[Dict[str, object]]) -> Dict[str, Optional[Summary]]:
    """Per metric, the summary over an entry's finished runs that have it."""
    ok = [row for row in runs if row.get("status") in OK]
    return {
        key: summarise([row[key] for row in ok if row.get(key) not in (None, "")])
        for key in NUMBERS
    }


def _status(runs: Sequence[Dict[str, object]]) -> str:
    if len(runs) == 1:
        return str(runs[0]["status"])
    ok = sum(row["status"] in OK for row in runs)
    return f"{ok}/{len(runs)} ok" if ok < len(runs) else f"{len(runs)} seeds"


def markdown_table(rows: Sequence[Dict[str, object]], columns: Sequence[Tuple] = COLUMNS) -> str:
    """One line per entry: its ``columns``' values, or with several seeds mean ± 95 % interval."""
    lines = [
        "| " + " | ".join(header for _, header, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for name, runs in entries(rows).items():
        numbers = summaries(runs)
        cells = []
        for key, _, digits in columns:
            if key == "method":
                cells.append(name)
            elif key == "status":
                cells.append(_status(runs))
            elif digits is None:
                cells.append(_cell(runs[0].get(key), None))
            else:
                cells.append(_summary_cell(numbers[key], digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_table(rows: Sequence[Dict[str, object]]) -> str:
    """Each run's row of the run and offline columns (the rest: report.csv)."""
    keys = [c for c in BASE_COLUMNS if c[0] != "split"]
    lines = [
        "| " + " | ".join(["method", "seed", *(h for _, h, _ in keys[1:])]) + " |",
        "|" + "|".join("---" for _ in range(len(keys) + 1)) + "|",
    ]
    for row in rows:
        cells = [str(row["method"]), _cell(row.get("seed"), None)]
        cells += [_cell(row.get(key), digits) for key, _, digits in keys[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by_seed(runs: Sequence[Dict[str, object]], key: str) -> Dict[int, float]:
    return {
        int(row["seed"]): float(row[key])
        for row in runs
        if row.get("status") in OK
        and row.get("seed") is not None
        and row.get(key) not in (None, "")
    }


def _encoders_of(runs: Sequence[Dict[str, object]]) -> List[str]:
    """The encoders an entry's runs have offline numbers of."""
    have = {
        OFFLINE_KEYS[k][1] for row in runs for k in OFFLINE_KEYS if row.get(k) not in (None, "")
    }
    return [e for e in ENCODERS if e in have]


def stand_in(runs: Sequence[Dict[str, object]], key: str) -> str:
    """The key of ``runs``' numbers that a paired difference in ``key`` uses: ``key`` itself, or
    for an entry evaluated on one encoder (VICReg), that encoder's number of the same metric,
    which stands in for the encoder it lacks."""
    encoders = _encoders_of(runs)
    if key not in OFFLINE_KEYS or len(encoders) != 1:
        return key
    return f"{OFFLINE_KEYS[key][0]}_{encoders[0]}"


def differences(
    rows: Sequence[Dict[str, object]], pair: Tuple[str, str]
) -> Dict[str, Optional[Summary]]:
    """Per accuracy metric (offline: per encoder of ``pair[0]``), the paired (same seed)
    difference ``pair[0] - pair[1]``; :func:`stand_in` gives ``pair[1]``'s number."""
    grouped = entries(rows)
    a, b = grouped.get(pair[0], []), grouped.get(pair[1], [])
    return {
        key: paired_difference(_by_seed(a, key), _by_seed(b, stand_in(b, key)))
        for key in ACCURACIES
    }


def _verdict(summary: Summary) -> str:
    if summary.half_width is None:
        return "one seed: no interval"
    if summary.excludes_zero():
        side = "above" if summary.low > 0 else "below"
        return f"excludes zero ({side}): a difference at 95 %"
    return "includes zero: no difference shown at 95 %"


def differences_section(rows: Sequence[Dict[str, object]], pair: Tuple[str, str]) -> List[str]:
    headers = {key: header for key, header, _ in COLUMNS}
    found = {key: s for key, s in differences(rows, pair).items() if s is not None}
    if not found:
        return []
    lines = [
        f"## Paired difference {pair[0]} − {pair[1]}",
        "",
        "Same seeds, per seed difference; mean, std and Student-t 95 % interval over seeds.",
        *_stand_in_note(rows, pair, found),
        "",
        "| metric | seeds | mean difference | std | 95 % interval | |",
        "|---|---|---|---|---|---|",
    ]
    for key, s in found.items():
        interval = "–" if s.half_width is None else f"[{s.low:+.2f}, {s.high:+.2f}]"
        std = "–" if s.std is None else f"{s.std:.2f}"
        lines.append(
            f"| {headers[key]} | {s.n} | {s.mean:+.2f} | {std} | {interval} | {_verdict(s)} |"
        )
    return [*lines, ""]


def _stand_in_note(
    rows: Sequence[Dict[str, object]], pair: Tuple[str, str], found: Dict[str, Summary]
) -> List[str]:
    runs = entries(rows).get(pair[1], [])
    lacked = sorted({OFFLINE_KEYS[key][1] for key in found if stand_in(runs, key) != key})
    if not lacked:
        return []
    (encoder,) = _encoders_of(runs)
    return ["", f"{pair[1]} has one encoder ({encoder}): the {lacked[0]} rows compare with it."]


def csv_rows(report: Report) -> List[Dict[str, object]]:
    """Each run's row; for entries with several runs then their mean, std and interval bounds;
    then each pair's difference the same way."""
    out = []
    for name, runs in entries(report.rows).items():
        out += runs
        if len(runs) > 1:
            numbers = summaries(runs)
            for stat in ("mean", "std", "low", "high"):
                values = {k: getattr(s, stat) if s else None for k, s in numbers.items()}
                out.append({"method": name, "seed": _STAT_NAMES[stat], **values})
    for pair in report.pairs:
        found = differences(report.rows, pair)
        if any(found.values()):
            for stat in ("mean", "std", "low", "high"):
                values = {k: getattr(s, stat) if s else None for k, s in found.items()}
                name = f"{pair[0]} − {pair[1]} (paired)"
                out.append({"method": name, "seed": _STAT_NAMES[stat], **values})
    return out


_STAT_NAMES = {"mean": "mean", "std": "std", "low": "ci95_low", "high": "ci95_high"}


OFFLINE_INTRO = (
    "Frozen features of each encoder a run has, fitted on the training set and scored on the "
    "*offline split*: **target**, the EMA encoder, and **context**, the online encoder (see the "
    "protocol below); a floor's numbers serve both."
)

LOW_SHOT_INTRO = (
    "The offline logistic regression fitted on few of the training labels: 1 % and 10 % of them, "
    "and 1, 5 and 10 images per class, always as many of each class; each the mean over "
    f"{LowShot().draws} draws of the labelled images (the same draws for every run and encoder), "
    "scored on the offline split. report.csv also has each run's std over its draws."
)
FINETUNE_INTRO = (
    "Each run's evaluated encoder (target for C-JEPA/I-JEPA, context otherwise) trained with a "
    "linear classifier on all training labels (`main_linear.py finetune=True`, the same budget "
    "for every run), top-1 on the offline split after the last epoch; next to it the same "
    "encoder's frozen-feature logistic regression from the table above."
)

PROTOCOL = """\
- **online linear / kNN top-1**: solo-learn's online probes, trained and scored during
  pretraining on the full validation set at each epoch end (last value shown). They read solo's
  `backbone`, i.e. the context encoder of C-JEPA/I-JEPA; the *target enc.* column is the probe on
  the EMA target encoder (`momentum_val_acc1`, JEPA runs with `momentum.classifier: True`). The
  kNN bank holds the epoch's training features (masked context for the JEPA methods), so kNN
  numbers come from validations that closed a whole epoch: the one after a mid-epoch time stop
  would score against a bank of the few batches since the last epoch end.
- **offline logreg / kNN top-1**: frozen mean-pooled ViT tokens of the whole train and validation
  sets (validation transform, no augmentation); the *offline split* column says which validation
  set: `test`, the dataset's own, or `holdout`, the training images that `data.holdout` held out
  by class (the same for every run), the training set then being the rest; multinomial
  logistic regression on standardised features (scikit-learn's objective, C = 1, full-batch
  L-BFGS stopped as scikit-learn's lbfgs at 100 iterations or a gradient below 1e-4) and cosine
  kNN (k = 20, distance-weighted), both in torch on the run's device. Every encoder a run has is
  evaluated: *target*, the EMA encoder (`momentum_backbone`; C-JEPA's and I-JEPA's, the one
  I-JEPA evaluates; BYOL's momentum encoder), and *context*, solo's online `backbone` (what
  `main_linear.py` loads; VICReg's only encoder).
- **low-shot logreg**: the same logistic regression (standardised by the labelled subset, C = 1)
  fitted on a class-balanced subset of the training labels: a share of them (1 %, 10 %: that
  share of the training set split evenly over the classes) or k images per class (1, 5, 10).
  Each setting is drawn three times (draw d: a random order of each class from seed d, the same
  for every run and encoder, so the subsets are shared and a paired difference compares like
  with like; a setting takes the first images of each class, so a draw's smaller subsets lie in
  its larger ones); a cell is the mean over the draws (then over seeds, ± the interval).
- **fine-tuned top-1** (`--finetune`): the run's evaluated encoder and a linear classifier
  trained together on all training labels by solo-learn's `LinearModel` (`finetune=True`,
  `scripts/linear/<dataset>/finetune.yaml`: its optimiser, augmentation and schedule) for
  `--finetune-epochs` epochs, validated on the offline split; the last epoch's `val_acc1`.
- **effective rank**: RankMe (exp of the entropy of the normalised singular values) of the
  validation features used offline; **peak mem**: the training process's peak RSS (CUDA: peak
  allocated GPU memory); **train img/s**: images (not crops) per second of training batches,
  data loading included and validation excluded; **wall time**: the whole training process
  (floors: their evaluation).
- **floors**: *raw pixels* = the same offline evaluation on the normalised input pixels;
  *random init* = the same ViT, untrained (the initial weights of each SSL method's first run,
  named after the method when several ran; with `--seeds`, one per seed). An untrained ViT's
  target encoder is a copy of its context encoder, so one evaluation gives both columns; each
  entry of a method (the same initial weights) gets its paired difference to that method's,
  per encoder.
- **figures**: accuracies against epochs and against wall-clock since training started; each
  run's self-supervised loss terms; the collapse monitors, std and effective rank of the
  evaluated encoder's features on 256 fixed validation images every `log_every_n_steps` steps
  (their cost, about 2 %, counts as training time). With several seeds a curve is the mean
  over seeds (point by point) with a band of ± one standard deviation.
- **seeds**: `--seeds` runs every entry once per seed (`seed=`: data order, augmentations, masks
  and initial weights). A cell is then mean ± the half-width of the 95 % confidence interval,
  Student t with n − 1 degrees of freedom (`mean ± t · std / √n`); report.csv has each seed's
  row and the mean, std and interval. A paired difference (C-JEPA − I-JEPA; with the
  ablation also both terms − var/cov only and invariance only − I-JEPA; C-JEPA − VICReg and
  − BYOL when they ran) is taken seed by seed (same seed: same data order and augmentations,
  for the ablation's entries also the same masks and initial weights), per encoder of the
  first entry, and gets the same interval for its mean; a second entry with one encoder
  (VICReg) is compared through that encoder for both.
"""


def _have(rows: Sequence[Dict[str, object]], columns: Sequence[Tuple]) -> bool:
    """Whether any row has a number in ``columns`` (records from before them have none)."""
    keys = [key for key, _, digits in columns if digits is not None]
    return any(row.get(key) not in (None, "") for row in rows for key in keys)


def write_report(report: Report, out: Path) -> None:
    """Writes ``out/report.csv`` and ``out/report.md``."""
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in csv_rows(report):
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_COLUMNS})

    parts = [f"# {report.title}", ""]
    parts += [f"- **{key}**: {value}" for key, value in report.settings.items()]
    parts += ["", markdown_table(report.rows, RUN_COLUMNS), ""]
    parts += ["## Offline evaluation", "", OFFLINE_INTRO, ""]
    parts += [markdown_table(report.rows, OFFLINE_COLUMNS), ""]
    if _have(report.rows, LOW_SHOT_COLUMNS):
        parts += ["## Low-shot linear probes", "", LOW_SHOT_INTRO, ""]
        parts += [markdown_table(report.rows, LOW_SHOT_COLUMNS), ""]
    if _have(report.rows, FINETUNE_COLUMNS):
        parts += ["## Fine-tuning", "", FINETUNE_INTRO, ""]
        parts += [markdown_table(report.rows, FINETUNE_COLUMNS), ""]
    for pair in report.pairs:
        parts += differences_section(report.rows, pair)
    if any(row.get("seed") is not None for row in report.rows):
        parts += ["## Per seed", "", per_seed_table(report.rows), ""]
    if report.failures:
        parts += ["## Failed runs", ""] + [f"- {failure}" for failure in report.failures] + [""]
    parts += ["## Protocol", "", PROTOCOL]
    if report.plots:
        parts += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in report.plots] + [""]
    (out / "report.md").write_text("\n".join(parts))


def run_row(
    name: str, status: str, wall_time_s: Optional[float], seed: Optional[int] = None, **numbers
) -> Dict[str, object]:
    return {"method": name, "seed": seed, "status": status, "wall_time_s": wall_time_s, **numbers}
