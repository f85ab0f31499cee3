"""``--finetune``: after a run's pretraining, its evaluated encoder is fine-tuned with a linear
classifier (solo's ``LinearModel``, ``finetune=True``, the dataset's ``finetune.yaml``) on the
run's data and backbone, under the budget every run of the comparison gets.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from solo_cjepa.launch.checkpoints.loading import find_checkpoint
from solo_cjepa.tools.compare.metrics import last, read_metrics
from solo_cjepa.tools.compare.runner import ProgressLine, RunSpec, run
from solo_cjepa.tools.offline_eval import evaluated_encoder

LINEAR_CONFIGS = Path(__file__).resolve().parents[3] / "scripts" / "linear"
CONFIG_NAME = "finetune.yaml"
# as the comparison's pretraining runs: a CSV log and a checkpoint, no W&B, no progress bar
COMMON_OVERRIDES = (
    "++wandb.enabled=False",
    "++auto_resume.enabled=False",
    "++resume_from_checkpoint=null",
    "++num_sanity_val_steps=0",
    "++enable_progress_bar=False",
    "++devices=1",  # in the job's first task alone, after the run's DDP training ended
    "++num_nodes=1",
)


@dataclass(frozen=True)
class FineTuning:
    """``config_dir``: ``scripts/linear/<dataset>``; ``epochs``: every run's budget (None: the
    config's ``max_epochs``); ``overrides``: hydra overrides of ``finetune.yaml`` for every run."""

    config_dir: str
    epochs: Optional[int] = None
    overrides: Sequence[str] = ()


def linear_config_dir(dataset_folder: str) -> Path:
    """``scripts/linear/<dataset>`` of the pretraining configs' folder name."""
    return LINEAR_CONFIGS / dataset_folder


def from_run(run_cfg: Dict[str, Any], run_dir: Path) -> List[str]:
    """Overrides that fine-tune the evaluated encoder of the run in ``run_dir`` (its cfg
    ``run_cfg``, from its ``args.json``) on what it trained on: its backbone, data, crop size,
    holdout and seed."""
    data, backbone = run_cfg["data"], run_cfg["backbone"]
    values = {
        "pretrained_feature_extractor": str(run_dir),
        "pretrained_encoder": evaluated_encoder(run_cfg["method"]),
        "pretrain_method": run_cfg["method"],
        "backbone.name": backbone["name"],
        **{f"backbone.kwargs.{key}": value for key, value in backbone["kwargs"].items()},
        **{f"data.{key}": data.get(key) for key in ("dataset", "train_path", "val_path")},
        "data.holdout": data.get("holdout", 0),
        "data.augmentations.crop_size": run_cfg["augmentations"][0]["crop_size"],
        "seed": run_cfg["seed"],
    }
    # JSON is hydra's syntax for these values: null, true, quoted strings, numbers, lists
    return [f"++{key}={json.dumps(value)}" for key, value in values.items()]


def finetune(
    settings: FineTuning, spec: RunSpec, folder: Path, run_dir: Path, line: ProgressLine
) -> Dict[str, object]:
    """Fine-tunes the run in ``run_dir`` into ``folder/finetune`` (its log there too); the
    record's fine-tuning numbers: the encoder, the last validation's top-1, the epochs and the
    wall time, or the error."""
    run_cfg = json.loads((find_checkpoint(run_dir).parent / "args.json").read_text())
    out = folder / "finetune"
    epochs = [] if settings.epochs is None else [f"++max_epochs={settings.epochs}"]
    command = [
        sys.executable,
        "-m",
        "solo_cjepa.tools.compare.train",
        "--config-path",
        settings.config_dir,
        "--config-name",
        CONFIG_NAME,
        *COMMON_OVERRIDES,
        *from_run(run_cfg, run_dir),
        f"++checkpoint.dir={out}",
        *epochs,
        *settings.overrides,
    ]
    outcome = run(spec, command, out, None, line)
    numbers: Dict[str, object] = {
        "finetune_encoder": evaluated_encoder(run_cfg["method"]),
        "finetune_wall_time_s": outcome.wall_time_s,
    }
    if not outcome.ok or outcome.run_dir is None:
        return {**numbers, "finetune_error": f"{outcome.status}: {outcome.error}"}
    rows = read_metrics(outcome.run_dir / "metrics.csv")
    return {
        **numbers,
        "finetune_top1": last(rows, "val_acc1"),
        "finetune_epochs": last(rows, "epochs_done"),
    }
