"""Loads a pretrained encoder into a freshly built backbone for linear evaluation, strictly.

solo-learn's ``main_linear.py`` loads with ``strict=False`` and so silently evaluates a partly
random backbone when the linear yaml's ``backbone`` differs from the pretraining one. Here every
weight must match, and either encoder of a momentum method can be chosen: ``context`` (solo's
``backbone``) or ``target`` (the EMA ``momentum_backbone``).
"""

from typing import Dict

import torch
from torch import nn

from solo_cjepa.errors import ConfigError

ENCODER_PREFIXES = {"context": "backbone.", "target": "momentum_backbone."}


def _examples(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def encoder_state_dict(path: str, encoder: str = "context") -> Dict[str, torch.Tensor]:
    """The weights of one encoder in a solo-learn checkpoint, keys without their prefix."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    prefix = ENCODER_PREFIXES[encoder]
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
