"""Reading checkpoints back: run folders, the weights of a solo-learn ``.ckpt`` or an official
I-JEPA ``.pth.tar`` by role, loaded strictly (every key and shape must match; solo-learn's own
linear loader does not check) into a backbone, a run to initialise (``init_from``) or a method.
"""

import json
import math
import os
import pickle
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from solo.methods import METHODS
from timm.layers import resample_abs_pos_embed
from torch import nn

import solo_cjepa  # noqa: F401  (registers cjepa and the small ViTs)
from solo_cjepa.errors import ConfigError, note, require
from solo_cjepa.launch.checkpoints import ijepa_format
from solo_cjepa.vit import sincos_pos_embed

# Encoder name -> attribute of solo's momentum methods: ``context`` is solo's online ``backbone``,
# ``target`` the EMA ``momentum_backbone``.
ENCODER_ATTRIBUTES = {"context": "backbone", "target": "momentum_backbone"}
PATCHES = "patch_embed.proj.weight"  # [width, channels, patch, patch] in timm and I-JEPA


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
    if not os.path.isfile(path):
        raise ConfigError(f"{key}={str(path)!r} does not exist or is not a file")
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


def jepa_weights(path: Union[str, Path], key: str) -> Dict[str, Dict[str, torch.Tensor]]:
    """The weights of checkpoint ``path`` by role (``context``, ``target``, ``predictor``), keys
    in our names: from a solo-learn ``.ckpt`` or an official I-JEPA ``.pth.tar``
    (``module.`` stripped). Roles the file lacks are absent."""
    checkpoint = read_checkpoint(path, key)
    if ijepa_format.is_official(checkpoint):
        return ijepa_format.from_official(checkpoint)
    state = checkpoint.get("state_dict", checkpoint)
    roles = {}
    for role, attribute in {**ENCODER_ATTRIBUTES, "predictor": "predictor"}.items():
        prefix = attribute + "."
        weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            roles[role] = weights
    return roles


def encoder_state_dict(path: str, encoder: str = "context") -> Dict[str, torch.Tensor]:
    """The weights of one encoder in a solo-learn or I-JEPA checkpoint, keys without prefix."""
    weights = jepa_weights(path, "pretrained_feature_extractor").get(encoder)
    if not weights:
        raise ConfigError(
            f"{path!r} has no {ENCODER_ATTRIBUTES[encoder]}.* (I-JEPA: "
            f"{ijepa_format.OFFICIAL_ENTRIES[encoder]}) weights for pretrained_encoder="
            f"{encoder!r}; allowed: 'context', or 'target' for checkpoints of momentum methods "
            "(cjepa, byol, ...) and of I-JEPA"
        )
    return weights


def _grid(num_patches: int, what: str) -> Tuple[int, int]:
    side = math.isqrt(num_patches)
    require(side * side == num_patches, f"{what}: pos_embed of {num_patches} patches is not square")
    return side, side


def fit_pos_embed(
    module: nn.Module, weights: Dict[str, torch.Tensor], what: str
) -> Dict[str, torch.Tensor]:
    """``weights`` with a ``pos_embed`` of another image size (same width and patch size)
    brought to ``module``'s patch grid: regenerated when it is the fixed 2-D sin-cos embedding,
    resampled bicubically (timm's ``resample_abs_pos_embed``) when it was learned."""
    stored, ours = weights.get("pos_embed"), module.state_dict().get("pos_embed")
    if stored is None or ours is None or stored.shape == ours.shape:
        return weights
    with_prefix = getattr(module, "num_prefix_tokens", 0) and not module.no_embed_class
    if stored.ndim != 3 or stored.shape[-1] != ours.shape[-1] or with_prefix:
        return weights  # another width, or class-token embeddings: check_fit names them
    width = stored.shape[-1]
    old_grid = _grid(stored.shape[1], what)
    new_grid = tuple(module.patch_embed.grid_size)
    if torch.allclose(stored[0], sincos_pos_embed(width, old_grid), atol=1e-5):
        pos_embed, how = sincos_pos_embed(width, new_grid)[None], "regenerated (fixed sin-cos)"
    else:
        pos_embed = resample_abs_pos_embed(stored, new_grid, old_grid, num_prefix_tokens=0)
        how = "resampled bicubically (learned)"
    note(
        f"{what}: pos_embed {how} from a {old_grid[0]}x{old_grid[1]} to a "
        f"{new_grid[0]}x{new_grid[1]} patch grid"
    )
    return {**weights, "pos_embed": pos_embed}


def check_patch_size(module: nn.Module, weights: Dict[str, torch.Tensor], what: str) -> None:
    """Another patch size cannot be adapted: a :class:`ConfigError` naming both sizes."""
    ours, theirs = module.state_dict().get(PATCHES), weights.get(PATCHES)
    if ours is not None and theirs is not None and ours.shape[-2:] != theirs.shape[-2:]:
        raise ConfigError(
            f"{what} has patch size {theirs.shape[-1]}, the backbone {ours.shape[-1]}: weights of "
            f"another patch size cannot be loaded (backbone.kwargs.patch_size={theirs.shape[-1]} "
            "fits them)"
        )


def check_fit(module: nn.Module, weights: Dict[str, torch.Tensor], what: str, advice: str) -> None:
    """Raises :class:`ConfigError` unless ``weights`` has exactly ``module``'s keys and shapes,
    naming the offending keys (``what``: which weights of which file; ``advice``: the fix)."""
    expected = module.state_dict()
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
        raise ConfigError(f"{what} does not fit {advice}: {'; '.join(problems)} weights")


def load_strictly(
    module: nn.Module, weights: Dict[str, torch.Tensor], what: str, advice: str
) -> None:
    """Copies ``weights`` (position embeddings brought to ``module``'s grid) into ``module``;
    raises :class:`ConfigError` unless patch size, keys and shapes match exactly (``what``: which
    weights of which file; ``advice``: the settings that must fit them)."""
    check_patch_size(module, weights, what)
    weights = fit_pos_embed(module, weights, what)
    check_fit(module, weights, what, advice)
    module.load_state_dict(weights, strict=True)


def load_pretrained_backbone(backbone: nn.Module, path: str, encoder: str = "context") -> None:
    """Copies the ``encoder`` weights of checkpoint ``path`` (ours or I-JEPA's) into
    ``backbone``; raises :class:`ConfigError` unless keys and shapes match exactly."""
    load_strictly(
        backbone,
        encoder_state_dict(path, encoder),
        f"the {encoder} encoder in {path!r}",
        "backbone.name/backbone.kwargs (use the pretraining run's backbone settings)",
    )


def initialise_from(model: LightningModule, path: str) -> None:
    """Initialises a pretraining method from checkpoint ``path`` (ours or I-JEPA's): context
    encoder, target encoder and predictor when its shape fits (else it stays fresh, said in one
    line); optimizer and schedules are not touched."""
    weights = jepa_weights(path, "init_from")
    advice = "backbone.name/backbone.kwargs of this run"
    require("context" in weights, f"init_from={path!r} holds no encoder weights")
    for role, attribute in ENCODER_ATTRIBUTES.items():
        if not hasattr(model, attribute):
            continue
        if role not in weights:
            note(f"init_from: {path} has no {role} encoder; it starts as the context encoder")
        encoder = weights.get(role, weights["context"])
        load_strictly(
            getattr(model, attribute),
            encoder,
            f"the {role} encoder in init_from={path!r}",
            advice,
        )
    loaded = [
        f"{role} encoder loaded"
        for role, attribute in ENCODER_ATTRIBUTES.items()
        if hasattr(model, attribute)
    ]
    predictor = getattr(model, "predictor", None)
    if predictor is not None:
        try:
            require("predictor" in weights, f"{path!r} has no predictor")
            check_fit(
                predictor,
                weights["predictor"],
                f"the predictor in {path!r}",
                "method_kwargs.pred_*",
            )
            predictor.load_state_dict(weights["predictor"], strict=True)
            loaded.append("predictor loaded")
        except ConfigError as err:
            loaded.append(f"the predictor starts fresh: {err}")
    note(f"init_from={path}: {'; '.join(loaded)}; optimizer and schedules start fresh")


def run_cfg(folder: Union[str, Path]) -> DictConfig:
    """The full config a pretraining run recorded in its folder's ``args.json``, editable."""
    cfg = OmegaConf.create(json.loads((Path(folder) / "args.json").read_text()))
    OmegaConf.set_struct(cfg, False)
    return cfg


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
    cfg = run_cfg(ckpt.parent)
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
