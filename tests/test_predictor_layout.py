"""The predictor's single-sequence layout: what it computes, its independence of other target blocks
and its wiring through ``method_kwargs.pred_layout``."""

import pytest
import torch
from cjepa_helpers import image_batch, tiny_vit_cfg

from solo_cjepa.masks import MultiBlockMaskGenerator
from solo_cjepa.method import CJEPA
from solo_cjepa.predictor import JEPAPredictor


def predictors(seed=0, B=3, D=32):
    torch.manual_seed(seed)
    repeat = JEPAPredictor((8, 8), D, predictor_embed_dim=24, depth=2, num_heads=3).eval()
    single = JEPAPredictor((8, 8), D, 24, 2, 3, layout="single").eval()
    single.load_state_dict(repeat.state_dict())
    context_idx, target_idx = MultiBlockMaskGenerator(8, min_keep=4)(B, seed)
    context = torch.randn(B, context_idx.shape[1], D)
    return repeat, single, context, context_idx, target_idx


def repeat_layout_with_context_blind_to_queries(predictor, context, context_idx, target_idx):
    """I-JEPA's M sequences, but the context tokens do not attend to the mask tokens."""
    B, M, Kt = target_idx.shape
    Kc = context.shape[1]
    x = predictor.embed(context) + predictor.pos_embed[context_idx]
    queries = predictor.mask_token + predictor.pos_embed[target_idx]
    x = torch.cat([x.unsqueeze(1).expand(-1, M, -1, -1), queries], dim=2).flatten(0, 1)
    mask = torch.ones(Kc + Kt, Kc + Kt, dtype=torch.bool)
    mask[:Kc, Kc:] = False
    for block in predictor.blocks:
        x = block(x, attn_mask=mask)
    return predictor.proj(predictor.norm(x[:, Kc:])).reshape(B, M, Kt, -1)


def test_single_layout_is_the_repeat_layout_with_context_blind_to_queries():
    repeat, single, *inputs = predictors()
    expected = repeat_layout_with_context_blind_to_queries(repeat, *inputs)
    torch.testing.assert_close(single(*inputs), expected, rtol=1e-5, atol=1e-6)
    # ... which is not I-JEPA's layout itself: there the context also reads the mask tokens.
    assert not torch.allclose(single(*inputs), repeat(*inputs), rtol=0, atol=1e-7)


def test_single_layout_mask_holds_on_timms_explicit_attention_path():
    # TIMM_FUSED_ATTN=0 (faster for bf16 on CPU) takes this path instead of SDPA.
    _, single, *inputs = predictors()
    fused = single(*inputs)
    for block in single.blocks:
        block.attn.fused_attn = False
    torch.testing.assert_close(single(*inputs), fused, rtol=1e-5, atol=1e-6)


def test_single_layout_predicts_each_block_independently_of_the_others():
    _, single, context, context_idx, target_idx = predictors()
    out = single(context, context_idx, target_idx)
    moved = target_idx.clone()
    moved[:, 1:] = target_idx[:, :1]
    out_moved = single(context, context_idx, moved)
    torch.testing.assert_close(out_moved[:, 0], out[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_moved[:, 2], out[:, 0], rtol=1e-5, atol=1e-6)


def test_single_layout_gradients_reach_every_parameter():
    _, single, context, context_idx, target_idx = predictors()
    context.requires_grad_(True)
    single(context, context_idx, target_idx).square().mean().backward()
    assert context.grad.abs().sum() > 0
    for name, p in single.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_method_kwargs_select_the_layout_and_reject_unknown_ones():
    assert CJEPA(tiny_vit_cfg()).predictor.layout == "repeat"
    model = CJEPA(tiny_vit_cfg(pred_layout="single"))
    assert model.predictor.layout == "single"
    loss = model.training_step(image_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss) and model.predictor.mask_token.grad is not None
    with pytest.raises(ValueError, match="pred_layout"):
        CJEPA(tiny_vit_cfg(pred_layout="diagonal"))
