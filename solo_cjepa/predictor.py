"""The JEPA predictor: a narrow transformer that predicts target-block embeddings from context.

The default layout is ``facebookresearch/ijepa``'s ``VisionTransformerPredictor``: every target
block is its own sequence of the context tokens and one mask token per target position, so the
context is repeated M times. ``layout="single"`` runs one sequence per image instead (see
``JEPAPredictor``), about half the tokens at I-JEPA's mask sizes.
"""

import inspect
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from solo_cjepa.vit import sincos_pos_embed

PREDICTOR_LAYOUTS = ("repeat", "single")


class JEPAPredictor(nn.Module):
    def __init__(
        self,
        grid_size: tuple,
        embed_dim: int,
        predictor_embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        layout: str = "repeat",
    ):
        """Predictor of I-JEPA.

        Args:
            grid_size: patch grid (H, W) of the encoder.
            embed_dim: width D of the encoder tokens (input and output).
            predictor_embed_dim: width P of the predictor.
            depth: number of transformer blocks.
            num_heads: attention heads (I-JEPA uses the encoder's head count).
            mlp_ratio: hidden width of the blocks' MLP relative to P.
            layout: ``"repeat"``, I-JEPA's: one sequence per target block, the context tokens
                attending to the context and to that block's mask tokens. ``"single"``: one
                sequence per image, ``Kc + M*Kt`` tokens instead of ``M*(Kc + Kt)``, in which the
                context attends to the context only and each block's mask tokens to the context
                and their own block. Its predictions are exactly those of I-JEPA's layout with
                the context not attending to the mask tokens.
        """
        super().__init__()
        if layout not in PREDICTOR_LAYOUTS:
            raise ValueError(f"layout must be one of {PREDICTOR_LAYOUTS}, got {layout!r}")
        if layout == "single" and "attn_mask" not in inspect.signature(Block.forward).parameters:
            raise ValueError('layout "single" needs a timm whose ViT Block takes attn_mask')
        self.layout = layout
        if predictor_embed_dim % num_heads:
            raise ValueError(
                f"pred_embed_dim={predictor_embed_dim} must be divisible by "
                f"pred_num_heads={num_heads}"
            )
        self.embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.register_buffer(
            "pos_embed", sincos_pos_embed(predictor_embed_dim, grid_size), persistent=False
        )
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(
            *[
                Block(
                    predictor_embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer
                )
                for _ in range(depth)
            ]
        )
        self.norm = norm_layer(predictor_embed_dim)
        self.proj = nn.Linear(predictor_embed_dim, embed_dim)

        # I-JEPA's init_model: trunc-normal(0.02) for every Linear and the mask token.
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(
        self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor
    ) -> torch.Tensor:
        """Predicts the encoder embeddings of every target block.

        Args:
            context: context-encoder tokens ``[B, Kc, D]``.
            context_idx: their patch indices ``[B, Kc]``.
            target_idx: target-block patch indices ``[B, M, Kt]``.

        Returns:
            predictions ``[B, M, Kt, D]``.
        """
        B, M, Kt = target_idx.shape
        Kc = context.shape[1]
        x = self.embed(context) + self.pos_embed[context_idx]  # [B, Kc, P]
        queries = self.mask_token + self.pos_embed[target_idx]  # [B, M, Kt, P]
        if self.layout == "single":
            x = torch.cat([x, queries.flatten(1, 2)], dim=1)  # [B, Kc+M*Kt, P]
            mask = self._single_sequence_mask(Kc, M, Kt, x.device)
            for block in self.blocks:
                x = block(x, attn_mask=mask)
        else:
            # One copy builds the M sequences straight from the broadcast context.
            x = torch.cat([x.unsqueeze(1).expand(-1, M, -1, -1), queries], dim=2)
            x = self.blocks(x.flatten(0, 1))  # [B*M, Kc+Kt, P]
        x = self.proj(self.norm(x[:, Kc:]))  # [B, M*Kt, D] or [B*M, Kt, D]
        return x.reshape(B, M, Kt, -1)

    @staticmethod
    def _single_sequence_mask(Kc: int, M: int, Kt: int, device: torch.device) -> torch.Tensor:
        """``[L, L]`` boolean attention mask (True: may attend) of the single layout."""
        block = torch.arange(Kc + M * Kt, device=device)
        block = torch.where(block < Kc, -1, (block - Kc) // Kt)  # -1: context, m: target block m
        return (block[None, :] == -1) | (block[:, None] == block[None, :])
