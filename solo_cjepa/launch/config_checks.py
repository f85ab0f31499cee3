"""Checks a pretraining or linear-evaluation cfg before anything is built, so that each mistake a
user is likely to make stops the launcher with one line naming the key and the values it accepts
(solo-learn itself answers most of them with a bare ``AssertionError`` or a crash mid-training).
Method-specific settings are checked by the method itself (``CJEPA.add_and_assert_specific_cfg``).
"""

import os
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf
from solo.methods import METHODS
from solo.methods.base import BaseMethod
from solo.methods.linear import LinearModel
from solo.utils.misc import omegaconf_select

from solo_cjepa.errors import ConfigError, note, require
from solo_cjepa.launch.checkpoints.loading import ENCODER_ATTRIBUTES, newest_checkpoint
from solo_cjepa.launch.data import DATASETS, fashion_mnist
from solo_cjepa.launch.data.loaders import IMAGE_FOLDERS

FORMATS = ("image_folder", "h5", "dali")
DALI_DATASETS = ("imagenet100", "imagenet", "custom")
H5_DATASETS = ("imagenet100", "imagenet")
PRETRAIN_SCHEDULERS = ("warmup_cosine", "step", "none")  # what BaseMethod.configure_optimizers does
ONE_CROP_METHODS = ("cjepa", "mae", "wmse")  # the rest of solo's zoo trains on two large crops
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt", ".pth.tar")  # .pth.tar: I-JEPA's


def _one_of(cfg: DictConfig, key: str, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    value = omegaconf_select(cfg, key, None)
    require(value in allowed, f"{key} must be one of {allowed}, got {value!r}")


def _number(cfg: DictConfig, key: str, low: float, integer: bool = False, strict: bool = False):
    value = omegaconf_select(cfg, key, None)
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if strict else value >= low)
    require(ok, f"{key} must be {kind} {'>' if strict else '>='} {low}, got {value!r}")


def _existing_dir(cfg: DictConfig, key: str) -> Path:
    path = omegaconf_select(cfg, key, None)
    require(
        path is not None, f"{key} must be set to a folder for data.dataset={cfg.data.dataset!r}"
    )
    require(
        os.path.isdir(path), f"{key}={path!r} is not a folder (working directory {os.getcwd()!r})"
    )
    return Path(path)


def _check_data(cfg: DictConfig, labelled_val: bool) -> None:
    _one_of(cfg, "data.dataset", DATASETS)
    data = cfg.data
    data.format = omegaconf_select(cfg, "data.format", "image_folder")
    data.fraction = omegaconf_select(cfg, "data.fraction", -1.0)
    data.num_workers = omegaconf_select(cfg, "data.num_workers", 4)
    data.download_dir = omegaconf_select(cfg, "data.download_dir", "datasets")
    _one_of(cfg, "data.format", FORMATS)
    _number(cfg, "data.num_workers", 0, integer=True)
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
    if data.dataset == "custom" and not omegaconf_select(cfg, "data.no_labels", False):
        require(
            any(entry.is_dir() for entry in os.scandir(train_dir)),
            f"data.train_path={str(train_dir)!r} has no class sub-folders; for a flat folder of "
            "unlabelled images set data.no_labels=True",
        )
    if labelled_val or omegaconf_select(cfg, "data.val_path", None) is not None:
        _existing_dir(cfg, "data.val_path")


def _check_optimizer(cfg: DictConfig, optimizers: Iterable[str], schedulers: Iterable[str]) -> None:
    _one_of(cfg, "optimizer.name", optimizers)
    _number(cfg, "optimizer.batch_size", 1, integer=True)
    _number(cfg, "optimizer.lr", 0, strict=True)
    _number(cfg, "optimizer.weight_decay", 0)
    _one_of(cfg, "scheduler.name", schedulers)
    if cfg.scheduler.name == "step":
        steps = omegaconf_select(cfg, "scheduler.lr_decay_steps", None)
        require(
            isinstance(steps, (list, ListConfig)) and len(steps) > 0,
            "scheduler.lr_decay_steps must be a list of epochs for scheduler.name=step, "
            f"got {steps!r}",
        )
    _number(cfg, "max_epochs", 1, integer=True)


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


def _check_checkpointing(cfg: DictConfig, method: str) -> None:
    if omegaconf_select(cfg, "checkpoint.enabled", False):
        _number(cfg, "checkpoint.frequency", 1, integer=True)
    if omegaconf_select(cfg, "resume_from_checkpoint", None) is not None:
        _checkpoint_file(cfg, "resume_from_checkpoint", f"trained_models/{method}/<run>")
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
        isinstance(img_size, int) and isinstance(patch_size, int) and patch_size >= 1,
        "backbone.kwargs.img_size and patch_size must be integers, "
        f"got {img_size!r}, {patch_size!r}",
    )
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


def check_pretrain_cfg(cfg: DictConfig) -> None:
    """Checks the user-facing keys of a pretraining cfg (before solo's ``parse_cfg``) and fills
    the launcher's own defaults (``data.download_dir``; ``data.val_path`` of downloadable sets)."""
    _one_of(cfg, "method", sorted(METHODS))
    _one_of(cfg, "backbone.name", sorted(BaseMethod._BACKBONES))
    _check_data(cfg, labelled_val=False)

    augmentations = omegaconf_select(cfg, "augmentations", None)
    require(
        isinstance(augmentations, ListConfig) and len(augmentations) > 0,
        "augmentations must be a non-empty list of pipelines (e.g. defaults: "
        "[augmentations: ijepa.yaml])",
    )
    for i, aug in enumerate(augmentations):
        _number(cfg, f"augmentations.{i}.crop_size", 1, integer=True)
        _number(cfg, f"augmentations.{i}.num_crops", 1, integer=True)
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
    _number(cfg, "optimizer.classifier_lr", 0, strict=True)
    _check_checkpointing(cfg, cfg.method)


def check_linear_cfg(cfg: DictConfig) -> None:
    """Checks the user-facing keys of a linear-evaluation cfg (before solo's ``parse_cfg``)."""
    _checkpoint_file(cfg, "pretrained_feature_extractor", "trained_models/cjepa/<run>")
    cfg.pretrained_encoder = omegaconf_select(cfg, "pretrained_encoder", "context")
    _one_of(cfg, "pretrained_encoder", tuple(ENCODER_ATTRIBUTES))
    _one_of(cfg, "backbone.name", sorted(BaseMethod._BACKBONES))
    _check_data(cfg, labelled_val=True)
    require(
        cfg.data.format != "dali" or not omegaconf_select(cfg, "auto_augment", False),
        "auto_augment must be False with data.format=dali (no RandAugment in solo's DALI pipeline)",
    )
    crop_size = omegaconf_select(cfg, "data.augmentations.crop_size", 224)
    _check_vit_sizes(cfg, [crop_size], "data.augmentations.crop_size")
    _check_optimizer(cfg, LinearModel._OPTIMIZERS, LinearModel._SCHEDULERS)
    _check_checkpointing(cfg, "linear")
