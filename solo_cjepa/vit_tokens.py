"""Token-level access to solo's timm ViT backbones: embed patches, keep a subset, encode.

timm's ``forward_features`` has no hook to drop tokens, so the JEPA context path runs its steps
here, gathering the visible patches between the positional embedding and the blocks.
"""

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn


def check_token_vit(vit: nn.Module) -> None:
    """Raises ``ValueError`` unless ``vit`` is a timm ViT whose pooled output is the mean of its
    final-normed patch tokens, which the JEPA token path and solo's ``forward`` then share."""
    if not isinstance(vit, VisionTransformer):
        raise ValueError(
            f"cjepa needs a timm ViT backbone (backbone.name: vit_tiny, vit_small, vit_base, "
            f"vit_large, ...), got {type(vit).__name__}"
        )
    if vit.num_prefix_tokens:
        raise ValueError("cjepa needs backbone.kwargs.class_token: False and reg_tokens: 0")
    if vit.global_pool != "avg" or not isinstance(vit.fc_norm, nn.Identity):
        raise ValueError("cjepa needs backbone.kwargs.global_pool: avg and fc_norm: False")


def embed_patches(vit: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Patch embedding plus positional embedding: ``[B, 3, H, W] -> [B, N, D]``."""
    return vit._pos_embed(vit.patch_embed(images))


def select_tokens(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gathers ``tokens[b, idx[b, ...]]``: ``[B, N, D]`` and ``[B, *S]`` give ``[B, *S, D]``."""
    flat = idx.reshape(idx.shape[0], -1, 1).expand(-1, -1, tokens.shape[-1])
    return tokens.gather(1, flat).reshape(*idx.shape, tokens.shape[-1])


def encode(vit: VisionTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Transformer blocks and final norm on embedded tokens: ``[B, K, D] -> [B, K, D]``."""
    return vit.norm(vit.blocks(vit.norm_pre(tokens)))
