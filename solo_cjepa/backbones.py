"""Small ViTs for CPU-sized runs, registered in solo-learn's backbone table.

solo's smallest ViT is ``vit_tiny`` (192 wide, 12 blocks); these keep its timm implementation and
its ``fn(method, **kwargs)`` contract, so every solo method and ``main_linear.py`` can use them once
``solo_cjepa`` is imported.
"""

from solo.methods.base import BaseMethod
from timm.models.vision_transformer import VisionTransformer, _create_vision_transformer


def _vit(
    embed_dim: int, depth: int, num_heads: int, patch_size: int, **kwargs
) -> VisionTransformer:
    return _create_vision_transformer(
        "vit_tiny_patch16_224",
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


SMALL_VITS = {"vit_nano": vit_nano, "vit_micro": vit_micro}
BaseMethod._BACKBONES.update(SMALL_VITS)
