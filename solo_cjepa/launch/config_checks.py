"""Checks a pretraining or linear-evaluation cfg before anything is built, so that each mistake a
user is likely to make stops the launcher with one line naming the key and the values it accepts
(solo-learn itself answers most of them with a bare ``AssertionError`` or a crash mid-training).
Types and ranges come from one table per launcher (:func:`check_types`); method-specific ranges
are checked by the method itself (``CJEPA.add_and_assert_specific_cfg``) once their types are.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from solo.methods import METHODS
from solo.methods.base import BaseMethod, BaseMomentumMethod
from solo.methods.linear import LinearModel
from solo.utils.misc import omegaconf_select

from solo_cjepa.errors import ConfigError, note, require
from solo_cjepa.health import COLLAPSE_DEFAULTS, COLLAPSE_MODES
from solo_cjepa.launch.checkpoints.loading import (
    ENCODER_ATTRIBUTES,
    newest_checkpoint,
    read_checkpoint,
)
from solo_cjepa.launch.data import DATASETS, fashion_mnist
from solo_cjepa.launch.data.images import UNREADABLE_POLICIES, image_files
from solo_cjepa.launch.data.loaders import IMAGE_FOLDERS

FORMATS = ("image_folder", "h5", "dali")
DALI_DATASETS = ("imagenet100", "imagenet", "custom")
H5_DATASETS = ("imagenet100", "imagenet")
HOLDOUT_DATASETS = (fashion_mnist.NAME, "cifar10", "cifar100", *IMAGE_FOLDERS)
PRETRAIN_SCHEDULERS = ("warmup_cosine", "step", "none")  # what BaseMethod.configure_optimizers does
ONE_CROP_METHODS = ("cjepa", "mae", "wmse")  # the rest of solo's zoo trains on two large crops
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".pth.tar")  # .pth.tar: I-JEPA's


def _one_of(cfg: DictConfig, key: str, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    value = omegaconf_select(cfg, key, None)
    require(value in allowed, f"{key} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class Number:
    """A number (``integer``: an int) in ``[low, high]`` (``strict``: above ``low``); ``optional``:
    null allowed. Booleans are not numbers here, though Python counts them as ints."""

    low: Optional[float] = None
    high: Optional[float] = None
    integer: bool = False
    strict: bool = False
    optional: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        above = self.low is None or (value > self.low if self.strict else value >= self.low)
        return above and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        text = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            text += f" in {'(' if self.strict else '['}{self.low}, {self.high}]"
        elif self.low is not None:
            text += f" {'>' if self.strict else '>='} {self.low}"
        return text + (" or null" if self.optional else "")


@dataclass(frozen=True)
class Flag:
    """True or False (a string such as 'yes' would be truthy and silently mean True); absent:
    the default applies."""

    optional: bool = True

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Pair:
    """A list of two numbers, low <= high (mask scales and aspect ratios)."""

    optional: bool = True

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, (list, tuple, ListConfig))
            and len(value) == 2
            and all(Number().accepts(v) for v in value)
            and value[0] <= value[1]
        )

    def __str__(self) -> str:
        return "a pair of numbers [low, high] with low <= high"


FLAG = Flag()
COUNT = Number(1, integer=True)
NON_NEGATIVE = Number(0)
OPTIONAL_NON_NEGATIVE = Number(0, optional=True)

# Every key the launchers read, with its type and range; absent optional keys are skipped.
COMMON_TYPES = {
    "seed": Number(0, integer=True, optional=True),
    "max_epochs": COUNT,
    "num_nodes": Number(1, integer=True, optional=True),
    "ddp_timeout_minutes": Number(0, strict=True, optional=True),
    "data.num_workers": Number(0, integer=True),
    "data.no_labels": FLAG,
    "optimizer.batch_size": COUNT,
    "optimizer.lr": Number(0, strict=True),
    "optimizer.weight_decay": NON_NEGATIVE,
    "scheduler.warmup_epochs": OPTIONAL_NON_NEGATIVE,
    "scheduler.warmup_start_lr": OPTIONAL_NON_NEGATIVE,
    "scheduler.min_lr": OPTIONAL_NON_NEGATIVE,
    "checkpoint.enabled": FLAG,
    "checkpoint.keep_prev": FLAG,
    "checkpoint.frequency": Number(1, integer=True, optional=True),
    "auto_resume.enabled": FLAG,
    "auto_resume.max_hours": OPTIONAL_NON_NEGATIVE,
    "backbone.kwargs.img_size": Number(1, integer=True, optional=True),
    "backbone.kwargs.patch_size": Number(1, integer=True, optional=True),
}
PRETRAIN_TYPES = {
    **COMMON_TYPES,
    "optimizer.classifier_lr": Number(0, strict=True),
    "momentum.base_tau": Number(0, 1, optional=True),
    "momentum.final_tau": Number(0, 1, optional=True),
    "momentum.classifier": FLAG,
    "momentum.memory_max_share": Number(0, 1, strict=True, optional=True),
    "data.batched_augmentations": FLAG,
    "scheduler.warmup_max_share": Number(0, 1, optional=True),
    "health.collapse_rank": Number(0, strict=True),
    "health.collapse_steps": COUNT,
}
AUGMENTATION_TYPES = {
    "crop_size": COUNT,
    "num_crops": COUNT,
    "rrc.crop_min_scale": Number(optional=True),  # their range: checked as a pair
    "rrc.crop_max_scale": Number(optional=True),
}
LINEAR_TYPES = {
    **COMMON_TYPES,
    "finetune": FLAG,
    "auto_augment": FLAG,
    "mixup": OPTIONAL_NON_NEGATIVE,
    "cutmix": OPTIONAL_NON_NEGATIVE,
    "label_smoothing": Number(0, 1, optional=True),
    "data.augmentations.crop_size": Number(1, integer=True, optional=True),
}
# Settings of a method, checked here before the method's own range checks run.
METHOD_KWARG_TYPES = {
    "cjepa": {
        "pred_depth": COUNT,
        "pred_embed_dim": COUNT,
        "pred_num_heads": Number(1, integer=True, optional=True),
        "num_targets": COUNT,
        "min_keep": COUNT,
        "target_scale": Pair(),
        "target_aspect_ratio": Pair(),
        "context_scale": Pair(),
        "vicreg_weight": NON_NEGATIVE,
        "sim_loss_weight": NON_NEGATIVE,
        "var_loss_weight": NON_NEGATIVE,
        "cov_loss_weight": NON_NEGATIVE,
        "final_weight_decay": OPTIONAL_NON_NEGATIVE,
        "fixed_pos_embed": FLAG,
    },
}


def check_types(
    cfg: DictConfig, types: Dict[str, Any], prefix: str = "", defaults_later: bool = False
) -> None:
    """Requires each key of ``types`` that ``cfg`` sets (and every non-optional one, unless its
    default is filled in later) to be of its kind, e.g. ``method_kwargs.num_targets must be an
    integer >= 1, got 2.5``."""
    for key, kind in types.items():
        value = omegaconf_select(cfg, key, None)
        if value is None and (kind.optional or defaults_later):
            continue
        require(kind.accepts(value), f"{prefix}{key} must be {kind}, got {value!r}")


def _existing_dir(cfg: DictConfig, key: str) -> Path:
    path = omegaconf_select(cfg, key, None)
    require(
        path is not None, f"{key} must be set to a folder for data.dataset={cfg.data.dataset!r}"
    )
    require(
        os.path.isdir(path), f"{key}={path!r} is not a folder (working directory {os.getcwd()!r})"
    )
    require(any(os.scandir(path)), f"{key}={path!r} is an empty folder")
    return Path(path)


def _check_labels(cfg: DictConfig, labelled_val: bool) -> None:
    """Unlabelled data (a flat custom folder) trains the encoder only: the online classifiers,
    which learn from the training labels, are switched off and nothing is validated."""
    data = cfg.data
    data.no_labels = omegaconf_select(cfg, "data.no_labels", False)
    check_types(cfg, {"data.no_labels": FLAG})
    if not data.no_labels:
        return
    require(
        not labelled_val,
        "data.no_labels must be False for linear evaluation, which trains on labelled images",
    )
    require(
        data.dataset == "custom",
        f"data.no_labels=True is for data.dataset=custom (a flat folder), got {data.dataset!r}",
    )
    require(
        omegaconf_select(cfg, "data.val_path", None) is None,
        "data.val_path is set but data.no_labels=True: the online classifiers learn from training "
        "labels, so without them there is nothing to validate; remove data.val_path and evaluate "
        "the checkpoint with main_linear.py on labelled folders",
    )
    if omegaconf_select(cfg, "momentum.classifier", False):
        cfg.momentum.classifier = False
    note("data.no_labels=True: online classifiers off (no val_acc1); evaluate with main_linear.py")


def _check_holdout(cfg: DictConfig) -> None:
    """``data.holdout``: a share of the labelled training images, split off by class, for the
    validation; the formats that read whole folders themselves (DALI, h5) cannot leave it out."""
    data = cfg.data
    holdout = data.holdout
    require(
        isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and 0 <= holdout < 1,
        "data.holdout must be a number in [0, 1) (the share of the training images held out to "
        f"validate on instead of the test set; 0: off), got {holdout!r}",
    )
    if not holdout:
        return
    require(
        data.format == "image_folder",
        f"data.holdout={holdout} needs data.format=image_folder (DALI and h5 read the whole "
        f"training set), got data.format={data.format!r}; set data.holdout=0 or "
        "data.format=image_folder",
    )
    require(
        data.dataset in HOLDOUT_DATASETS,
        f"data.holdout={holdout} works for data.dataset in {list(HOLDOUT_DATASETS)} (stl10's "
        f"training split is mostly unlabelled), got {data.dataset!r}",
    )
    require(
        not data.no_labels,
        f"data.holdout={holdout} splits the training images by class: it needs labels, but "
        "data.no_labels=True",
    )


def _check_data(cfg: DictConfig, labelled_val: bool) -> None:
    _one_of(cfg, "data.dataset", DATASETS)
    data = cfg.data
    data.format = omegaconf_select(cfg, "data.format", "image_folder")
    data.fraction = omegaconf_select(cfg, "data.fraction", -1.0)
    data.num_workers = omegaconf_select(cfg, "data.num_workers", 4)
    data.download_dir = omegaconf_select(cfg, "data.download_dir", "datasets")
    data.unreadable_images = omegaconf_select(cfg, "data.unreadable_images", "skip")
    data.holdout = omegaconf_select(cfg, "data.holdout", 0.0)
    _one_of(cfg, "data.format", FORMATS)
    _one_of(cfg, "data.unreadable_images", UNREADABLE_POLICIES)
    check_types(cfg, {"data.num_workers": Number(0, integer=True)})
    _check_labels(cfg, labelled_val)
    _check_holdout(cfg)
    if data.format == "dali":
        require(
            data.dataset in DALI_DATASETS,
            f"data.format=dali works for data.dataset in {list(DALI_DATASETS)}, got "
            f"{data.dataset!r}; use data.format=image_folder",
        )
        require(
            data.num_workers >= 1,
            f"data.num_workers is DALI's thread count with data.format=dali: must be >= 1, "
            f"got {data.num_workers}",
        )
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            raise ConfigError(
                "data.format=dali needs NVIDIA DALI: pip install nvidia-dali-cuda120 "
                "(or data.format=image_folder)"
            ) from None
    if data.format == "h5":
        require(
            data.dataset in H5_DATASETS,
            f"data.format=h5 works for data.dataset in {list(H5_DATASETS)}, got {data.dataset!r}",
        )
    fraction = data.fraction
    require(
        fraction == -1 or (isinstance(fraction, (int, float)) and 0 < fraction < 1),
        f"data.fraction must be -1 (all data) or in (0, 1), got {fraction!r}",
    )

    if data.dataset == fashion_mnist.NAME:
        data.train_path = omegaconf_select(cfg, "data.train_path", fashion_mnist.DEBIAN_DIR)
    else:
        require(
            omegaconf_select(cfg, "data.train_path", None) is not None,
            f"data.train_path must be set for data.dataset={data.dataset!r}",
        )
    if data.dataset not in IMAGE_FOLDERS:
        # downloadable sets: the validation split lives next to the training one
        data.val_path = omegaconf_select(cfg, "data.val_path", data.train_path)
        return
    train_dir = _existing_dir(cfg, "data.train_path")
    if data.dataset == "custom" and not data.no_labels:
        require(
            any(entry.is_dir() for entry in os.scandir(train_dir)),
            f"data.train_path={str(train_dir)!r} has no class sub-folders; for a flat folder of "
            "unlabelled images set data.no_labels=True",
        )
    if data.format == "dali" and data.no_labels:
        images = {path.name for path in image_files(train_dir)}
        stray = sorted(name for name in os.listdir(train_dir) if name not in images)
        require(
            not stray,
            f"data.train_path={str(train_dir)!r} holds entries that DALI would decode as images "
            f"({', '.join(stray[:3])}{', ...' if len(stray) > 3 else ''}); move them out, or use "
            "data.format=image_folder, which reads the image files only",
        )
    if data.holdout and omegaconf_select(cfg, "data.val_path", None) is None:
        # the validation images come out of the training folder; solo also scales the online
        # classifier's learning rate only where a validation path is set
        data.val_path = data.train_path
    if labelled_val or omegaconf_select(cfg, "data.val_path", None) is not None:
        _existing_dir(cfg, "data.val_path")


def _check_optimizer(cfg: DictConfig, optimizers: Iterable[str], schedulers: Iterable[str]) -> None:
    _one_of(cfg, "optimizer.name", optimizers)
    _one_of(cfg, "scheduler.name", schedulers)
    if cfg.scheduler.name == "step":
        steps = omegaconf_select(cfg, "scheduler.lr_decay_steps", None)
        require(
            isinstance(steps, (list, ListConfig)) and len(steps) > 0,
            "scheduler.lr_decay_steps must be a list of epochs for scheduler.name=step, "
            f"got {steps!r}",
        )


def _checkpoint_file(cfg: DictConfig, key: str, example: str) -> None:
    """Requires ``key`` to name a checkpoint file; a run folder stands for its newest checkpoint
    (which also spares users quoting the '=' of "ep=N.ckpt" on hydra's command line)."""
    path = omegaconf_select(cfg, key, None)
    if isinstance(path, str) and os.path.isdir(path):
        found = newest_checkpoint(path)
        if found is not None:
            path = str(found)
            OmegaConf.update(cfg, key, path)
            note(f"{key}={path}")
    require(
        isinstance(path, str) and path.endswith(CHECKPOINT_SUFFIXES) and os.path.isfile(path),
        f"{key} must be a {'/'.join(CHECKPOINT_SUFFIXES)} file or a run folder holding one "
        f"(e.g. {example}), got {path!r}",
    )


def _writable_dir(cfg: DictConfig, key: str) -> None:
    """Requires ``key`` to be a folder the run can create and write in (checked on its nearest
    existing ancestor, so that a failing check leaves nothing behind)."""
    path = omegaconf_select(cfg, key, None)
    require(isinstance(path, str) and path != "", f"{key} must be a folder path, got {path!r}")
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    require(
        existing.is_dir(),
        f"{key}={path!r} cannot be a folder: {str(existing)!r} is a file",
    )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(
            f"{key}={path!r} is not writable: cannot write in {str(existing)!r} ({err.strerror})"
        ) from None


def _check_checkpointing(cfg: DictConfig, method: str) -> None:
    cfg.checkpoint = omegaconf_select(cfg, "checkpoint", {})
    cfg.checkpoint.dir = omegaconf_select(cfg, "checkpoint.dir", "trained_models")
    _writable_dir(cfg, "checkpoint.dir")  # the CSV logger writes there even without checkpoints
    if omegaconf_select(cfg, "resume_from_checkpoint", None) is not None:
        _checkpoint_file(cfg, "resume_from_checkpoint", f"trained_models/{method}/<run>")
        read_checkpoint(cfg.resume_from_checkpoint, "resume_from_checkpoint", resumable=True)
    if omegaconf_select(cfg, "init_from", None) is not None:
        _checkpoint_file(
            cfg, "init_from", "trained_models/cjepa/<run> or IN1K-vit.h.14-300e.pth.tar"
        )


def _check_vit_sizes(cfg: DictConfig, crop_sizes: Iterable[int], crop_key: str) -> None:
    """timm ViTs accept one image size, which their patches must tile."""
    if not cfg.backbone.name.startswith("vit"):
        return
    kwargs = omegaconf_select(cfg, "backbone.kwargs", {}) or {}
    img_size, patch_size = kwargs.get("img_size", 224), kwargs.get("patch_size", 16)
    require(
        img_size % patch_size == 0,
        f"backbone.kwargs.img_size ({img_size}) must be divisible by backbone.kwargs.patch_size "
        f"({patch_size}); e.g. patch_size in {[p for p in range(2, 33) if img_size % p == 0]}",
    )
    if not kwargs.get("dynamic_img_size", False):
        for size in crop_sizes:
            require(
                size == img_size,
                f"{crop_key} ({size}) must equal backbone.kwargs.img_size ({img_size}) for a ViT "
                "(or set backbone.kwargs.dynamic_img_size=True)",
            )


def _fill_health(cfg: DictConfig) -> None:
    """``health.*`` (docs/run-health.md) with their defaults; a YAML ``collapse: off`` arrives
    as False (YAML 1.1 reads off as a boolean)."""
    cfg.health = omegaconf_select(cfg, "health", {})
    for key, value in COLLAPSE_DEFAULTS.items():
        cfg.health[key] = omegaconf_select(cfg, f"health.{key}", value)
    if cfg.health.collapse is False:
        cfg.health.collapse = "off"
    _one_of(cfg, "health.collapse", COLLAPSE_MODES)


def check_pretrain_cfg(cfg: DictConfig) -> None:
    """Checks the user-facing keys of a pretraining cfg (before solo's ``parse_cfg``) and fills
    the launcher's own defaults (``data.download_dir``; ``data.val_path`` of downloadable sets;
    ``health.*``)."""
    _one_of(cfg, "method", sorted(METHODS))
    _one_of(cfg, "backbone.name", sorted(BaseMethod._BACKBONES))
    _check_data(cfg, labelled_val=False)
    _fill_health(cfg)
    check_types(cfg, PRETRAIN_TYPES)
    method_types = METHOD_KWARG_TYPES.get(cfg.method, {})
    method_types = {f"method_kwargs.{key}": kind for key, kind in method_types.items()}
    check_types(cfg, method_types, defaults_later=True)  # the method fills its defaults
    if issubclass(METHODS[cfg.method], BaseMomentumMethod):
        base = omegaconf_select(cfg, "momentum.base_tau", 0.0)
        final = omegaconf_select(cfg, "momentum.final_tau", 1.0)
        require(
            base <= final,
            f"momentum.base_tau must be <= momentum.final_tau (the EMA momentum ramps up), got "
            f"{base} > {final}",
        )

    augmentations = omegaconf_select(cfg, "augmentations", None)
    require(
        isinstance(augmentations, ListConfig) and len(augmentations) > 0,
        "augmentations must be a non-empty list of pipelines (e.g. defaults: "
        "[augmentations: ijepa.yaml])",
    )
    for i, aug in enumerate(augmentations):
        check_types(aug, AUGMENTATION_TYPES, prefix=f"augmentations.{i}.")
        if aug.rrc.get("enabled", True):
            scale = (aug.rrc.crop_min_scale, aug.rrc.crop_max_scale)
            require(
                0 < scale[0] <= scale[1] <= 1,
                f"augmentations.{i}.rrc.crop_min_scale/crop_max_scale must satisfy "
                f"0 < min <= max <= 1, got {scale}",
            )
        if cfg.data.format == "dali":
            require(
                not aug.equalization.prob,
                f"augmentations.{i}.equalization.prob must be 0 with data.format=dali",
            )
    large = augmentations[0].crop_size
    num_large = sum(aug.num_crops for aug in augmentations if aug.crop_size == large)
    require(
        cfg.method in ONE_CROP_METHODS or num_large == 2,
        f"method={cfg.method!r} trains on 2 large crops (augmentations entries with crop_size "
        f"{large}), got {num_large}",
    )
    _check_vit_sizes(cfg, [large], "augmentations.0.crop_size")

    _check_optimizer(cfg, BaseMethod._OPTIMIZERS, PRETRAIN_SCHEDULERS)
    _check_checkpointing(cfg, cfg.method)


def check_linear_cfg(cfg: DictConfig) -> None:
    """Checks the user-facing keys of a linear-evaluation cfg (before solo's ``parse_cfg``)."""
    _checkpoint_file(cfg, "pretrained_feature_extractor", "trained_models/cjepa/<run>")
    read_checkpoint(cfg.pretrained_feature_extractor, "pretrained_feature_extractor")
    cfg.pretrained_encoder = omegaconf_select(cfg, "pretrained_encoder", "context")
    _one_of(cfg, "pretrained_encoder", tuple(ENCODER_ATTRIBUTES))
    _one_of(cfg, "backbone.name", sorted(BaseMethod._BACKBONES))
    _check_data(cfg, labelled_val=True)
    check_types(cfg, LINEAR_TYPES)
    require(
        cfg.data.format != "dali" or not omegaconf_select(cfg, "auto_augment", False),
        "auto_augment must be False with data.format=dali (no RandAugment in solo's DALI pipeline)",
    )
    crop_size = omegaconf_select(cfg, "data.augmentations.crop_size", 224)
    _check_vit_sizes(cfg, [crop_size], "data.augmentations.crop_size")
    _check_optimizer(cfg, LinearModel._OPTIMIZERS, LinearModel._SCHEDULERS)
    _check_checkpointing(cfg, "linear")
