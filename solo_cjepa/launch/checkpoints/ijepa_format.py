"""The checkpoint layout of facebookresearch/ijepa (``src/train.py``'s ``save_checkpoint``) and the
key maps between it and our weights, shared by import and export: pure functions on state dicts.

Official encoders are key-for-key timm ViTs without class token; the predictor differs in names
only, plus its stored sin-cos ``predictor_pos_embed``, which ours regenerates as a buffer.
"""

from typing import Any, Dict, Mapping

import torch

from solo_cjepa.vit import sincos_pos_embed

StateDict = Dict[str, torch.Tensor]

# Our roles -> the official checkpoint's entries. "context" is I-JEPA's online ``encoder``.
OFFICIAL_ENTRIES = {"context": "encoder", "target": "target_encoder", "predictor": "predictor"}
DDP_PREFIX = "module."  # every official state dict was saved from DistributedDataParallel
OFFICIAL_PREDICTOR_POS_EMBED = "predictor_pos_embed"
# Our JEPAPredictor's module names -> VisionTransformerPredictor's (a prefix of every key).
PREDICTOR_NAMES = {
    "embed": "predictor_embed",
    "mask_token": "mask_token",
    "blocks": "predictor_blocks",
    "norm": "predictor_norm",
    "proj": "predictor_proj",
}
# Scaler state of a fresh torch GradScaler: official runs with use_bfloat16 load it, fp32 ones
# ignore it.
FRESH_SCALER = {
    "scale": 65536.0,
    "growth_factor": 2.0,
    "backoff_factor": 0.5,
    "growth_interval": 2000,
    "_growth_tracker": 0,
}


def is_official(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint has the official layout (an ``encoder`` state dict entry)."""
    return isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("encoder"), Mapping)


def strip_ddp(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Keys without a leading ``module.``."""
    return {k[len(DDP_PREFIX) :] if k.startswith(DDP_PREFIX) else k: v for k, v in state.items()}


def _rename_prefix(state: Mapping[str, torch.Tensor], names: Mapping[str, str]) -> StateDict:
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        renamed[".".join(filter(None, (names.get(head, head), rest)))] = value
    return renamed


def predictor_from_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """An official predictor state dict (``module.`` already stripped) in our names; the fixed
    ``predictor_pos_embed`` is dropped (ours regenerates it for its own grid)."""
    state = {k: v for k, v in state.items() if k != OFFICIAL_PREDICTOR_POS_EMBED}
    return _rename_prefix(state, {v: k for k, v in PREDICTOR_NAMES.items()})


def predictor_to_official(state: Mapping[str, torch.Tensor], num_patches: int) -> StateDict:
    """Our predictor weights in the official names, with the sin-cos ``predictor_pos_embed``
    ``[1, N, P]`` of a square grid of ``num_patches`` that the official class stores."""
    official = _rename_prefix(state, PREDICTOR_NAMES)
    side = int(round(num_patches**0.5))
    width = state["mask_token"].shape[-1]
    official[OFFICIAL_PREDICTOR_POS_EMBED] = sincos_pos_embed(width, (side, side))[None]
    return official


def from_official(checkpoint: Mapping[str, Any]) -> Dict[str, StateDict]:
    """Our roles (``context``, ``target``, ``predictor``) from an official checkpoint, keys in
    our names; roles the file lacks are absent."""
    roles = {}
    for role, entry in OFFICIAL_ENTRIES.items():
        if isinstance(checkpoint.get(entry), Mapping):
            roles[role] = strip_ddp(checkpoint[entry])
    if "predictor" in roles:
        roles["predictor"] = predictor_from_official(roles["predictor"])
    return roles


def _official_optimizer(encoder: StateDict, predictor: StateDict) -> Dict[str, Any]:
    """State of a fresh AdamW with ``src/helper.py``'s ``init_opt`` groups (weights, then biases
    and 1-d tensors without weight decay, each for encoder then predictor), so the official
    ``load_checkpoint`` accepts the file and resumes with fresh moments."""

    def group(state: StateDict, decayed: bool):
        return [
            torch.empty(0, requires_grad=True)
            for name, value in state.items()
            if (("bias" not in name) and value.ndim != 1) == decayed
        ]

    groups = [
        {"params": group(encoder, True)},
        {"params": group(predictor, True)},
        {"params": group(encoder, False), "WD_exclude": True, "weight_decay": 0},
        {"params": group(predictor, False), "WD_exclude": True, "weight_decay": 0},
    ]
    return torch.optim.AdamW(groups).state_dict()


def to_official(
    context: StateDict,
    target: StateDict,
    predictor: StateDict,
    num_patches: int,
    epoch: int,
    **extra: Any,
) -> Dict[str, Any]:
    """An official checkpoint dict: ``encoder``, ``predictor``, ``target_encoder`` (``module.``
    prefixed), a fresh ``opt`` and ``scaler``, ``epoch`` (completed epochs, as the official
    loop saves ``epoch + 1``) and ``extra`` (``loss``, ``batch_size``, ``world_size``, ``lr``)."""
    official_predictor = predictor_to_official(predictor, num_patches)

    def ddp(state: StateDict) -> StateDict:
        return {DDP_PREFIX + k: v.detach().clone() for k, v in state.items()}

    return {
        "encoder": ddp(context),
        "predictor": ddp(official_predictor),
        "target_encoder": ddp(target),
        "opt": _official_optimizer(context, official_predictor),
        "scaler": dict(FRESH_SCALER),
        "epoch": epoch,
        **extra,
    }
