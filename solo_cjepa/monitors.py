"""Collapse monitors for pooled embeddings: a falling mean std (complete collapse) or effective rank
(dimensional collapse) shows long before the loss does. The rank's SVD makes the host wait for the
GPU, so C-JEPA computes them only on the steps Lightning logs.
"""

import torch


@torch.no_grad()
def mean_std(emb: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the per-dimension std of ``[B, D]`` embeddings across the batch."""
    return emb.float().std(dim=0).mean()


@torch.no_grad()
def effective_rank(emb: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """exp of the entropy of the normalised singular values of ``[B, D]`` embeddings (RankMe)."""
    singular = torch.linalg.svdvals(emb.float())
    p = singular / singular.sum().clamp_min(eps)
    return torch.exp(-(p * torch.log(p.clamp_min(eps))).sum())
