"""The JEPA predictor: a narrow transformer that predicts target-block embeddings from context.

Shapes follow ``facebookresearch/ijepa:src/models/vision_transformer.py``
(``VisionTransformerPredictor``): every target block is its own sequence made of the context tokens
followed by one mask token per target position, so the context is repeated M times.
"""

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from solo_cjepa.pos_embed import sincos_pos_embed


class JEPAPredictor(nn.Module):
    def __init__(
        self,
        grid_size: tuple,
        embed_dim: int,
        predictor_embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
    ):
        """Predictor of I-JEPA.

        Args:
            grid_size: patch grid (H, W) of the encoder.
            embed_dim: width D of the encoder tokens (input and output).
            predictor_embed_dim: width P of the predictor.
            depth: number of transformer blocks.
            num_heads: attention heads (I-JEPA uses the encoder's head count).
            mlp_ratio: hidden width of the blocks' MLP relative to P.
        """
        super().__init__()
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
        x = x.unsqueeze(1).expand(-1, M, -1, -1).reshape(B * M, Kc, -1)  # [B*M, Kc, P]
        queries = self.mask_token + self.pos_embed[target_idx].reshape(B * M, Kt, -1)
        x = self.blocks(torch.cat([x, queries], dim=1))  # [B*M, Kc+Kt, P]
        x = self.proj(self.norm(x[:, Kc:]))  # [B*M, Kt, D]
        return x.reshape(B, M, Kt, -1)
