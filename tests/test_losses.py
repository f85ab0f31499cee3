"""Losses against hand-written references (float64, element by element), values and gradients."""

import pytest
import torch

from solo_cjepa.losses import jepa_loss, vicreg_regularizer


def reference_smooth_l1(pred, target):
    diff = (pred - target).abs()
    return torch.where(diff < 1.0, 0.5 * diff**2, diff - 0.5).mean()


def reference_vicreg(c, t, sim_w, var_w, cov_w):
    n, d = c.shape
    sim = sum(((c[i, j] - t[i, j]) ** 2 for i in range(n) for j in range(d))) / (n * d)
    mean = c.sum(0) / n
    var = (
        sum(
            torch.relu(1 - torch.sqrt(((c[:, j] - mean[j]) ** 2).sum() / (n - 1) + 1e-4))
            for j in range(d)
        )
        / d
    )
    centred = c - mean
    cov = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                cov = cov + ((centred[:, i] * centred[:, j]).sum() / (n - 1)) ** 2
    cov = cov / d
    return sim_w * sim + var_w * var + cov_w * cov, sim, var, cov


def fixed_tensors(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * 1.5).requires_grad_(True)


def test_jepa_smooth_l1_matches_reference_in_value_and_gradient():
    pred, target = fixed_tensors(2, 4, 5, 6, seed=0), fixed_tensors(2, 4, 5, 6, seed=1).detach()
    ours = jepa_loss(pred, target)
    (grad_ours,) = torch.autograd.grad(ours, pred)
    ref = reference_smooth_l1(pred, target)
    (grad_ref,) = torch.autograd.grad(ref, pred)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, grad_ref)
    assert ((pred - target).abs() > 1).any() and ((pred - target).abs() < 1).any(), "both branches"


def test_jepa_mse_and_unknown_loss_type():
    pred, target = fixed_tensors(3, 7, seed=2), fixed_tensors(3, 7, seed=3)
    torch.testing.assert_close(jepa_loss(pred, target, "mse"), ((pred - target) ** 2).mean())
    with pytest.raises(ValueError, match="smooth_l1"):
        jepa_loss(pred, target, "l1")


@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.5, 3.0)])
def test_vicreg_regularizer_matches_reference_in_value_and_gradient(weights):
    c = fixed_tensors(6, 5, seed=4) * 0.3  # small spread: the variance hinge is active
    t = fixed_tensors(6, 5, seed=5).detach()
    terms = vicreg_regularizer(c, t, *weights)
    ref = reference_vicreg(c, t, *weights)
    for ours, theirs in zip(terms, ref):
        torch.testing.assert_close(ours, theirs)
    (grad_ours,) = torch.autograd.grad(terms.loss, c)
    (grad_ref,) = torch.autograd.grad(ref[0], c)
    torch.testing.assert_close(grad_ours, grad_ref)


def test_vicreg_target_side_gets_no_variance_or_covariance_gradient():
    c, t = fixed_tensors(6, 5, seed=6), fixed_tensors(6, 5, seed=7)
    terms = vicreg_regularizer(c, t, sim_loss_weight=0.0)
    grad_t, grad_c = torch.autograd.grad(terms.loss, (t, c))
    assert torch.count_nonzero(grad_t) == 0 and torch.count_nonzero(grad_c) > 0
