"""Last-layer attention maps of a pretrained ViT's target and context encoders over validation
images, drawn as a grid like the C-JEPA paper's qualitative figures:

    python -m solo_cjepa.attention CKPT --images 8 --out attention.png [--query mean|center]
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

matplotlib.use("Agg")  # files only: no display on a CPU server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from solo_cjepa.errors import ConfigError, exit_on_config_error  # noqa: E402
from solo_cjepa.launch.checkpoints.loading import encoder_of, load_method  # noqa: E402
from solo_cjepa.tools.offline_eval import eval_loaders, spread_images  # noqa: E402
from solo_cjepa.vit import check_token_vit, embed_patches  # noqa: E402

# Without a class token there is no single query that summarises the image, so a map is either
# the attention each patch receives, averaged over all queries (where the encoder looks overall),
# or what the central patch attends to.
QUERIES = ("mean", "center")


@torch.no_grad()
def last_layer_attention(vit: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Softmax attention of the last block, ``[B, heads, N, N]`` over the patch tokens.

    timm's fused attention does not return its weights, so they are recomputed from the last
    block's ``qkv`` projection on that block's input.
    """
    x = vit.norm_pre(embed_patches(vit, images))
    x = vit.blocks[:-1](x)
    block = vit.blocks[-1]
    attn = block.attn
    B, N, _ = x.shape
    qkv = (
        attn.qkv(block.norm1(x))
        .reshape(B, N, 3, attn.num_heads, attn.head_dim)
        .permute(2, 0, 3, 1, 4)
    )
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    return (q * attn.scale @ k.transpose(-2, -1)).softmax(dim=-1)


def attention_maps(
    vit: VisionTransformer, images: torch.Tensor, query: str = "mean"
) -> torch.Tensor:
    """One map per image on the patch grid, ``[B, H/p, W/p]``, averaged over heads and scaled
    to [0, 1] per image."""
    if query not in QUERIES:
        raise ConfigError(f"--query must be one of {list(QUERIES)}, got {query!r}")
    check_token_vit(vit)
    attn = last_layer_attention(vit, images).mean(dim=1)  # [B, N, N]
    rows, cols = vit.patch_embed.grid_size
    if query == "mean":
        maps = attn.mean(dim=1)
    else:
        maps = attn[:, (rows // 2) * cols + cols // 2]
    maps = maps.reshape(-1, rows, cols)
    low = maps.flatten(1).min(dim=1).values[:, None, None]
    high = maps.flatten(1).max(dim=1).values[:, None, None]
    return (maps - low) / (high - low).clamp_min(1e-12)


def _displayable(images: torch.Tensor) -> torch.Tensor:
    """Normalised inputs back to [0, 1] per image, channels last, for ``imshow``."""
    flat = images.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    scaled = (images - low[:, None, None, None]) / (high - low).clamp_min(1e-12)[
        :, None, None, None
    ]
    return scaled.permute(0, 2, 3, 1)


def draw_grid(images: torch.Tensor, rows: Sequence, out: Path) -> Path:
    """Images in the first row, then one row per ``(title, maps)`` of ``rows``, maps upsampled to
    the image size and laid over the image."""
    shown = _displayable(images)
    n = len(images)
    fig, axes = plt.subplots(
        1 + len(rows), n, figsize=(1.6 * n, 1.7 * (1 + len(rows))), squeeze=False
    )
    for j in range(n):
        axes[0, j].imshow(shown[j])
        for i, (_, maps) in enumerate(rows, start=1):
            up = F.interpolate(maps[None, j : j + 1], size=images.shape[-2:], mode="bilinear")[0, 0]
            axes[i, j].imshow(shown[j])
            axes[i, j].imshow(up, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    for i, title in enumerate(["image", *(title for title, _ in rows)]):
        axes[i, 0].set_ylabel(title, fontsize="small")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def validation_images(cfg, count: int) -> torch.Tensor:
    """``count`` validation images spread evenly over the set, through its validation transform."""
    dataset = eval_loaders(cfg)[1].dataset
    if not 1 <= count <= len(dataset):
        raise ConfigError(f"--images must be in [1, {len(dataset)}], got {count}")
    return spread_images(dataset, count)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m solo_cjepa.attention",
        description="Draw validation images with the last-layer attention of the target (EMA) and "
        "context encoders of a pretraining checkpoint.",
    )
    parser.add_argument("checkpoint", help="a .ckpt file, or a run folder (its newest .ckpt)")
    parser.add_argument(
        "--images", type=int, default=8, help="how many validation images (default 8)"
    )
    parser.add_argument("--out", type=Path, default=Path("attention.png"), help="PNG to write")
    parser.add_argument(
        "--query",
        choices=QUERIES,
        default="mean",
        help="mean: attention each patch receives, averaged over queries; center: what the "
        "central patch attends to (default mean)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with exit_on_config_error():
        model, cfg = load_method(args.checkpoint)
        images = validation_images(cfg, args.images)
        # methods without an EMA encoder (VICReg, ...) have the context row only
        names = ("target", "context") if hasattr(model, "momentum_backbone") else ("context",)
        rows = [
            (f"{name} encoder", attention_maps(encoder_of(model, name), images, args.query))
            for name in names
        ]
    print(draw_grid(images, rows, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
