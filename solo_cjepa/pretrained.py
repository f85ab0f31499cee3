"""Rebuilds a pretraining run's method with its trained weights, from a checkpoint and the
``args.json`` (the full cfg) that solo-learn's ``Checkpointer`` writes next to it.
"""

import json
from pathlib import Path
from typing import Tuple, Union

import torch
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from solo.methods import METHODS
from torch import nn

import solo_cjepa  # noqa: F401  (registers cjepa and the small ViTs)
from solo_cjepa.backbone_loading import ENCODER_PREFIXES
from solo_cjepa.errors import ConfigError


def find_checkpoint(path: Union[str, Path]) -> Path:
    """``path`` if it is a ``.ckpt`` file, else the newest ``.ckpt`` in the run folder ``path``."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ConfigError(f"{str(path)!r} is a folder without .ckpt files")
        return found[-1]
    if path.suffix != ".ckpt" or not path.is_file():
        raise ConfigError(f"{str(path)!r} is neither a .ckpt file nor a run folder holding one")
    return path


def load_method(path: Union[str, Path]) -> Tuple[LightningModule, DictConfig]:
    """The method of checkpoint (or run folder) ``path`` with its weights, in eval mode on the
    CPU, and the run's cfg."""
    ckpt = find_checkpoint(path)
    args = ckpt.parent / "args.json"
    if not args.is_file():
        raise ConfigError(
            f"{str(ckpt)!r} has no args.json next to it; it must come from a pretraining run "
            "with checkpoint.enabled=True"
        )
    cfg = OmegaConf.create(json.loads(args.read_text()))
    OmegaConf.set_struct(cfg, False)
    model = METHODS[cfg.method](cfg)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    return model.eval(), cfg


def encoder_of(model: LightningModule, encoder: str) -> nn.Module:
    """``context`` (solo's ``backbone``) or ``target`` (the EMA ``momentum_backbone``)."""
    if encoder not in ENCODER_PREFIXES or not hasattr(model, ENCODER_PREFIXES[encoder][:-1]):
        raise ConfigError(
            f"encoder must be 'context', or 'target' for momentum methods (cjepa, byol, ...), "
            f"got {encoder!r} for {type(model).__name__}"
        )
    return getattr(model, ENCODER_PREFIXES[encoder][:-1])
