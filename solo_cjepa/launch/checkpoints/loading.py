"""Reading checkpoints back: the newest one of a run folder, one encoder's weights loaded
strictly into a fresh backbone (linear evaluation), and a whole pretraining method rebuilt from
its checkpoint and ``args.json`` (the tools).
"""

import json
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

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


def _examples(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def encoder_state_dict(path: str, encoder: str = "context") -> Dict[str, torch.Tensor]:
    """The weights of one encoder in a solo-learn checkpoint, keys without their prefix."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
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
    :class:`ConfigError` unless keys and shapes match exactly (solo-learn's ``main_linear.py``
    loads with ``strict=False`` and so silently evaluates a partly random backbone when the
    linear yaml's ``backbone`` differs from the pretraining one)."""
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
