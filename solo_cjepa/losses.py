"""C-JEPA's objective: I-JEPA's prediction loss plus a single-branch VICReg regulariser.

``loss = jepa_loss(pred, target) + vicreg_weight * vicreg_regularizer(c, t).loss``; with
``vicreg_weight = 0`` the objective is I-JEPA's. The VICReg terms are solo-learn's.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from solo.losses.vicreg import covariance_loss, invariance_loss, variance_loss
from solo.utils.misc import gather

JEPA_LOSSES = ("smooth_l1", "mse")


def jepa_loss(
    pred: torch.Tensor, target: torch.Tensor, loss_type: str = "smooth_l1"
) -> torch.Tensor:
    """Mean over all elements of smooth-L1 (beta 1, as the official I-JEPA code) or MSE (the paper's
    L2) between predicted and target embeddings of any matching shape."""
    if loss_type == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=1.0)
    if loss_type == "mse":
        return F.mse_loss(pred, target)
    raise ValueError(f"loss_type must be one of {JEPA_LOSSES}, got {loss_type!r}")


class VICRegTerms(NamedTuple):
    loss: torch.Tensor  # weighted sum
    sim: torch.Tensor  # invariance: mse(c, t)
    var: torch.Tensor  # variance hinge of c
    cov: torch.Tensor  # off-diagonal covariance of c


# VICReg's weights (Bardes et al. 2022, solo's vicreg.yaml), which the C-JEPA paper keeps.
VICREG_WEIGHTS = {"sim_loss_weight": 25.0, "var_loss_weight": 25.0, "cov_loss_weight": 1.0}


def vicreg_regularizer(
    context_emb: torch.Tensor,
    target_emb: torch.Tensor,
    sim_loss_weight: float = VICREG_WEIGHTS["sim_loss_weight"],
    var_loss_weight: float = VICREG_WEIGHTS["var_loss_weight"],
    cov_loss_weight: float = VICREG_WEIGHTS["cov_loss_weight"],
) -> VICRegTerms:
    """C-JEPA's VICReg terms on per-image embeddings ``c`` (context), ``t`` (target), ``[B, D]``.

    Invariance is the local ``mse(c, t)``; variance and covariance act on ``c`` alone, gathered
    across processes with gradient (as solo's ``vicreg_loss_func``), so their statistics use the
    global batch.
    """
    sim = invariance_loss(context_emb, target_emb)
    c = gather(context_emb)
    # solo's terms add two branches; passing the one branch twice and halving gives its term.
    var = variance_loss(c, c) / 2
    cov = covariance_loss(c, c) / 2
    loss = sim_loss_weight * sim + var_loss_weight * var + cov_loss_weight * cov
    return VICRegTerms(loss, sim, var, cov)
