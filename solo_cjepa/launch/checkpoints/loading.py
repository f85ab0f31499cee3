"""Reading our checkpoints back: the newest checkpoint of a run folder, one encoder's weights
loaded strictly into a fresh backbone (linear evaluation), and a whole pretraining method rebuilt
from its checkpoint and ``args.json`` (the tools).

solo-learn's ``main_linear.py`` loads with ``strict=False`` and so silently evaluates a partly
random backbone when the linear yaml's ``backbone`` differs from the pretraining one. Here every
weight must match, and either encoder of a momentum method can be chosen.
"""

import json
import pickle
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from solo.methods import METHODS
from torch import nn

import solo_cjepa  # noqa: F401  (registers cjepa and the small ViTs)
from solo_cjepa.errors import ConfigError

# Encoder name -> attribute of solo's momentum methods: ``context`` is solo's online ``backbone``,
# ``target`` the EMA ``momentum_backbone``.
ENCODER_ATTRIBUTES = {"context": "backbone", "target": "momentum_backbone"}


def newest_checkpoint(folder: Union[str, Path]) -> Optional[Path]:
    """The most recently written ``.ckpt`` in ``folder``, or ``None``."""
    found = sorted(Path(folder).glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def find_checkpoint(path: Union[str, Path]) -> Path:
    """``path`` if it is a ``.ckpt`` file, else the newest ``.ckpt`` in the run folder ``path``."""
    path = Path(path)
    if path.is_dir():
        found = newest_checkpoint(path)
        if found is None:
            raise ConfigError(f"{str(path)!r} is a folder without .ckpt files")
        return found
    if path.suffix != ".ckpt" or not path.is_file():
        raise ConfigError(f"{str(path)!r} is neither a .ckpt file nor a run folder holding one")
    return path


# What Lightning needs to continue a run, beyond the weights.
TRAINING_STATE = ("state_dict", "optimizer_states", "epoch", "global_step")


def read_checkpoint(path: Union[str, Path], key: str, resumable: bool = False) -> Dict[str, Any]:
    """The contents of checkpoint ``path`` (the value of cfg key ``key``), read as torch reads it
    by default (``weights_only=True``, memory-mapped where the format allows); a file it cannot
    read, or one that does not hold a dict (with Lightning's training state if ``resumable``),
    raises :class:`ConfigError` naming ``key`` and ``path``."""
    reason = None
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except Exception as err:  # torch raises anything from KeyError to UnpicklingError here
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"  # torch.save's format since torch 1.6
        if not zipped:
            reason = "not a PyTorch checkpoint file"
        elif isinstance(err, pickle.UnpicklingError):
            reason = "it stores Python objects besides tensors, which weights-only loading refuses"
        else:
            reason = "truncated or corrupt"
    if reason is None and not isinstance(checkpoint, dict):
        reason = f"it holds a {type(checkpoint).__name__}, not a checkpoint dict"
    if reason is None and resumable:
        missing = [k for k in TRAINING_STATE if k not in checkpoint]
        if missing:
            reason = f"it lacks the training state a resume needs ({', '.join(missing)})"
    if reason is not None:
        raise ConfigError(f"{key}={str(path)!r} is not a usable checkpoint: {reason}")
    return checkpoint


def _examples(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def encoder_state_dict(path: str, encoder: str = "context") -> Dict[str, torch.Tensor]:
    """The weights of one encoder in a solo-learn checkpoint, keys without their prefix."""
    checkpoint = read_checkpoint(path, "pretrained_feature_extractor")
    state = checkpoint.get("state_dict", checkpoint)
    prefix = ENCODER_ATTRIBUTES[encoder] + "."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ConfigError(
            f"pretrained_feature_extractor={path!r} has no {prefix}* weights for "
            f"pretrained_encoder={encoder!r}; allowed: 'context', or 'target' for checkpoints of "
            "momentum methods (cjepa, byol, ...)"
        )
    return weights


def load_pretrained_backbone(backbone: nn.Module, path: str, encoder: str = "context") -> None:
    """Copies the ``encoder`` weights of checkpoint ``path`` into ``backbone``; raises
    :class:`ConfigError` unless keys and shapes match exactly."""
    weights = encoder_state_dict(path, encoder)
    expected = backbone.state_dict()
    missing = expected.keys() - weights.keys()
    unexpected = weights.keys() - expected.keys()
    reshaped = {
        k for k in expected.keys() & weights.keys() if expected[k].shape != weights[k].shape
    }
    if missing or unexpected or reshaped:
        problems = [
            f"{len(found)} {kind} ({_examples(found)})"
            for kind, found in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("reshaped", reshaped),
            )
            if found
        ]
        raise ConfigError(
            f"the {encoder} encoder in {path!r} does not fit backbone.name/backbone.kwargs: "
            f"{'; '.join(problems)} weights; use the backbone settings of the pretraining run"
        )
    backbone.load_state_dict(weights, strict=True)


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
    if encoder not in ENCODER_ATTRIBUTES or not hasattr(model, ENCODER_ATTRIBUTES[encoder]):
        raise ConfigError(
            f"encoder must be 'context', or 'target' for momentum methods (cjepa, byol, ...), "
            f"got {encoder!r} for {type(model).__name__}"
        )
    return getattr(model, ENCODER_ATTRIBUTES[encoder])
