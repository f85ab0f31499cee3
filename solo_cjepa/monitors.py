"""Collapse monitors for pooled embeddings: a falling mean std (complete collapse) or effective rank
(dimensional collapse) shows long before the loss does. The rank's SVD makes the host wait for the
GPU, so C-JEPA computes them only on the steps Lightning logs.
"""

from typing import Iterable

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


@torch.no_grad()
def relative_distance(params: Iterable[torch.Tensor], reference: Iterable[torch.Tensor]) -> float:
    """``||params - reference|| / ||reference||`` over all tensors together: how far an encoder
    (the EMA target) has moved from another (its initial weights, or the context encoder)."""
    params, reference = list(params), list(reference)
    diff = sum(float((p.float() - r.float()).pow(2).sum()) for p, r in zip(params, reference))
    norm = sum(float(r.float().pow(2).sum()) for r in reference)
    return (diff / norm) ** 0.5
