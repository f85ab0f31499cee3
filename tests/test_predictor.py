"""JEPA predictor: shapes, per-block independence (I-JEPA layout) and position awareness."""

import torch

from solo_cjepa.masks import MultiBlockMaskGenerator
from solo_cjepa.predictor import JEPAPredictor


def setup(seed=0, B=3, D=32):
    torch.manual_seed(seed)
    predictor = JEPAPredictor((8, 8), D, predictor_embed_dim=24, depth=2, num_heads=3).eval()
    context_idx, target_idx = MultiBlockMaskGenerator(8, min_keep=4)(B, seed)
    context = torch.randn(B, context_idx.shape[1], D)
    return predictor, context, context_idx, target_idx


def test_output_shape_and_gradients_reach_every_parameter():
    predictor, context, context_idx, target_idx = setup()
    context.requires_grad_(True)
    out = predictor(context, context_idx, target_idx)
    assert out.shape == (*target_idx.shape, 32)
    out.square().mean().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    for name, p in predictor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_each_target_block_is_predicted_independently_of_the_others():
    predictor, context, context_idx, target_idx = setup()
    out = predictor(context, context_idx, target_idx)
    moved = target_idx.clone()
    moved[:, 1:] = target_idx[:, :1]  # every other block now sits where block 0 is
    out_moved = predictor(context, context_idx, moved)
    torch.testing.assert_close(out_moved[:, 0], out[:, 0])
    torch.testing.assert_close(out_moved[:, 1], out[:, 0], rtol=1e-5, atol=1e-5)


def test_predictions_depend_on_target_position_and_on_context():
    predictor, context, context_idx, target_idx = setup()
    out = predictor(context, context_idx, target_idx)
    shifted = predictor(context, context_idx, (target_idx + 1) % 64)
    assert not torch.allclose(out, shifted)
    other_context = predictor(context.flip(0), context_idx.flip(0), target_idx)
    assert not torch.allclose(out, other_context)


def test_sincos_positions_are_fixed_buffers_not_parameters():
    predictor = JEPAPredictor((8, 8), 32, predictor_embed_dim=24, depth=1, num_heads=3)
    assert predictor.pos_embed.shape == (64, 24)
    assert "pos_embed" not in dict(predictor.named_parameters())
    assert "pos_embed" not in predictor.state_dict()
