"""The logistic-regression probe of the offline evaluation, in torch on the features' device:
scikit-learn's ``StandardScaler`` + ``LogisticRegression`` objective, fitted by full-batch L-BFGS.
Shared by the full-label probe and the low-shot ones."""

from typing import Tuple

import torch
import torch.nn.functional as F

Labelled = Tuple[torch.Tensor, torch.Tensor]  # features [N, D], labels [N]


def standardise(train_x: torch.Tensor, val_x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both sets scaled by the training set's mean and (population) std; constant features are
    only centred, as scikit-learn's ``StandardScaler`` does."""
    mean = train_x.mean(0)
    std = train_x.std(0, correction=0)
    std = torch.where(std > 1e-7 * std.max().clamp_min(1e-30), std, torch.ones_like(std))
    return (train_x - mean) / std, (val_x - mean) / std


def logreg_top1(
    train: Labelled,
    val: Labelled,
    c: float = 1.0,
    max_iter: int = 100,
    tolerance: float = 1e-4,
) -> float:
    """Top-1 (%) on ``val`` of a multinomial logistic regression fitted on standardised ``train``
    features: scikit-learn's ``LogisticRegression(C=c)`` objective (mean cross-entropy +
    ``|W|^2 / (2 c N)``, bias not penalised) minimised by full-batch L-BFGS until the largest
    gradient entry is below ``tolerance`` or for ``max_iter`` iterations, scikit-learn's ``tol``
    and the ``max_iter`` the comparison has always used: on raw pixels neither fit converges
    within it, and stopping where scikit-learn stopped keeps the published numbers comparable."""
    (train_x, train_y), (val_x, val_y) = train, val
    train_x, val_x = standardise(train_x.float(), val_x.float())
    classes, train_y = torch.unique(train_y, return_inverse=True)
    weight = torch.zeros(train_x.shape[1], len(classes), device=train_x.device, requires_grad=True)
    bias = torch.zeros(len(classes), device=train_x.device, requires_grad=True)
    l2 = 1.0 / (2.0 * c * len(train_x))
    lbfgs = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=2 * max_iter,
        tolerance_grad=tolerance,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        lbfgs.step(objective)
    with torch.no_grad():
        predicted = classes[(val_x @ weight + bias).argmax(1)]
    return 100.0 * (predicted == val_y).float().mean().item()
