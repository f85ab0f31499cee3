"""The one seam to timm's VisionTransformer: token-level access (embed patches, keep a subset,
encode), the fixed 2-D sin-cos positional embeddings of I-JEPA, and the ViTs that this plugin
registers in solo-learn's backbone table: small ones for CPU-sized runs, and I-JEPA's released
ViT-H and ViT-g, which solo lacks.
"""

from typing import Tuple

import numpy as np
import torch
from solo.methods.base import BaseMethod
from solo.utils.misc import generate_2d_sincos_pos_embed_from_grid
from timm.models.vision_transformer import VisionTransformer, _create_vision_transformer
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


def sincos_pos_embed(embed_dim: int, grid_size: Tuple[int, int]) -> torch.Tensor:
    """Returns the ``[H*W, embed_dim]`` embedding of a row-major ``(H, W)`` patch grid."""
    height, width = grid_size
    grid = np.stack(
        np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    )
    embed = generate_2d_sincos_pos_embed_from_grid(embed_dim, grid.reshape(2, 1, height, width))
    return torch.from_numpy(embed).float()


# solo's smallest ViT is ``vit_tiny`` (192 wide, 12 blocks); these keep its timm implementation and
# its ``fn(method, **kwargs)`` contract, so every solo method and ``main_linear.py`` can use them.


def _vit(
    embed_dim: int,
    depth: int,
    num_heads: int,
    patch_size: int,
    architecture: str = "vit_tiny_patch16_224",
    **kwargs,
) -> VisionTransformer:
    return _create_vision_transformer(
        architecture,
        pretrained=False,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        num_classes=0,
        **kwargs,
    )


def vit_nano(method: str = None, patch_size: int = 16, **kwargs) -> VisionTransformer:
    """64 wide, 2 blocks, 2 heads: smoke tests."""
    return _vit(64, 2, 2, patch_size, **kwargs)


def vit_micro(method: str = None, patch_size: int = 16, **kwargs) -> VisionTransformer:
    """128 wide, 4 blocks, 4 heads: minutes-long CPU runs."""
    return _vit(128, 4, 4, patch_size, **kwargs)


def vit_huge(method: str = None, patch_size: int = 14, **kwargs) -> VisionTransformer:
    """I-JEPA's ViT-H (1280 wide, 32 blocks, 16 heads): its IN1K/IN22K checkpoints (/14, /16)."""
    return _vit(1280, 32, 16, patch_size, "vit_huge_patch14_224", **kwargs)


def vit_giant(method: str = None, patch_size: int = 16, **kwargs) -> VisionTransformer:
    """I-JEPA's ViT-g (1408 wide, 40 blocks, 16 heads, MLP ratio 48/11): its IN22K checkpoint."""
    return _vit(1408, 40, 16, patch_size, "vit_giant_patch14_224", mlp_ratio=48 / 11, **kwargs)


SMALL_VITS = {"vit_nano": vit_nano, "vit_micro": vit_micro}
IJEPA_VITS = {"vit_huge": vit_huge, "vit_giant": vit_giant}
BaseMethod._BACKBONES.update({**SMALL_VITS, **IJEPA_VITS})
