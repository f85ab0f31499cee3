"""Multi-block masks: I-JEPA's geometry, the fixes over the official sampler, reproducibility."""

import pytest
import torch

from solo_cjepa.masks import MultiBlockMaskGenerator
from solo_cjepa.seeds import mix_seed

GRIDS = [(14, 10), (8, 4), (7, 4)]  # (grid side, min_keep)


def draws(gen, n, batch_size=32, seed=0):
    return [gen(batch_size, mix_seed(seed, i)) for i in range(n)]


@pytest.mark.parametrize("side,min_keep", GRIDS)
def test_shapes_bounds_sorted_and_disjoint(side, min_keep):
    gen = MultiBlockMaskGenerator(side, min_keep=min_keep)
    N = side * side
    for context_idx, target_idx in draws(gen, 20):
        B, M, Kt = target_idx.shape
        assert (B, M) == (32, 4) and context_idx.shape[0] == 32
        assert context_idx.dtype == target_idx.dtype == torch.int64
        for idx in (context_idx, target_idx):
            assert idx.min() >= 0 and idx.max() < N
        assert (context_idx[:, 1:] > context_idx[:, :-1]).all(), "context rows sorted, no repeats"
        assert (target_idx[..., 1:] > target_idx[..., :-1]).all(), "block rows sorted, no repeats"
        assert context_idx.shape[1] >= min_keep
        for b in range(B):
            overlap = set(context_idx[b].tolist()) & set(target_idx[b].flatten().tolist())
            assert not overlap, "context must not see any target patch"


@pytest.mark.parametrize("side,min_keep", GRIDS)
def test_target_blocks_are_rectangles_of_one_size_per_batch(side, min_keep):
    gen = MultiBlockMaskGenerator(side, min_keep=min_keep)
    for _, target_idx in draws(gen, 10):
        rows, cols = target_idx // side, target_idx % side
        h = rows.amax(-1) - rows.amin(-1) + 1
        w = cols.amax(-1) - cols.amin(-1) + 1
        assert (h * w == target_idx.shape[-1]).all(), "a block fills its bounding box exactly"
        assert (h == h.flatten()[0]).all() and (w == w.flatten()[0]).all(), "one size per batch"


def test_block_sizes_follow_scale_and_aspect_ratio_of_ijepa_on_14x14():
    # From the official formulas on 14x14 (method notes §4.1): 5x6, 6x5, 6x6, 7x5, 8x5 blocks.
    gen = MultiBlockMaskGenerator(14)
    sizes = set()
    for _, target_idx in draws(gen, 300, batch_size=1):
        rows, cols = target_idx[0, 0] // 14, target_idx[0, 0] % 14
        sizes.add((int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)))
    assert sizes <= {(5, 6), (6, 5), (6, 6), (7, 5), (8, 5)}
    assert len(sizes) >= 4


@pytest.mark.parametrize("side,min_keep", GRIDS)
def test_every_position_is_reachable_last_row_and_column_included(side, min_keep):
    gen = MultiBlockMaskGenerator(side, min_keep=min_keep)
    seen_context, seen_target = (
        torch.zeros(side * side, dtype=torch.bool),
        torch.zeros(side * side, dtype=torch.bool),
    )
    for context_idx, target_idx in draws(gen, 30, batch_size=64):
        seen_context[context_idx.flatten()] = True
        seen_target[target_idx.flatten()] = True
    assert seen_context.all() and seen_target.all()


def test_same_seed_same_masks_and_different_seed_different_masks():
    gen = MultiBlockMaskGenerator(8, min_keep=4)
    a = draws(gen, 3, seed=7)
    b = draws(gen, 3, seed=7)
    c = draws(gen, 3, seed=8)
    for (ca, ta), (cb, tb) in zip(a, b):
        assert torch.equal(ca, cb) and torch.equal(ta, tb)
    assert any(not torch.equal(ta, tc) for (_, ta), (_, tc) in zip(a, c))


@pytest.mark.parametrize("side,min_keep,share", [(14, 10, 0.38), (8, 4, 0.36), (7, 4, 0.33)])
def test_context_share_of_the_grid_is_the_readme_table(side, min_keep, share):
    # README's "Masks" table (64 images a batch, 4 targets); the official truncation to the batch
    # minimum leaves ~13 % of an 8x8 or 7x7 grid.
    gen = MultiBlockMaskGenerator(side, min_keep=min_keep)
    mean = torch.tensor([c.shape[1] / side**2 for c, _ in draws(gen, 100, batch_size=64)]).mean()
    assert mean == pytest.approx(share, abs=0.02)


def test_crowded_targets_still_leave_min_keep_context():
    # 4 blocks of ~half a 4x4 grid can cover it all: those images must be re-drawn, not hang.
    gen = MultiBlockMaskGenerator(
        4, target_scale=(0.5, 0.5), target_aspect_ratio=(1, 1), min_keep=4
    )
    for context_idx, target_idx in draws(gen, 50, batch_size=64):
        assert context_idx.shape[1] >= 4
        covered = torch.zeros(64, 16, dtype=torch.bool).scatter_(1, target_idx.flatten(1), True)
        assert not covered.gather(1, context_idx).any()


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"grid_size": 8}, "min_keep"),  # official default min_keep=10 hangs on 8x8
        ({"grid_size": 8, "num_targets": 0}, "num_targets"),
        ({"grid_size": 8, "min_keep": 4, "target_scale": (0.0, 0.2)}, "target_scale"),
        ({"grid_size": 8, "min_keep": 4, "context_scale": (0.85, 1.2)}, "context_scale"),
        (
            {"grid_size": 8, "min_keep": 4, "target_aspect_ratio": (1.5, 0.75)},
            "target_aspect_ratio",
        ),
        ({"grid_size": 4, "min_keep": 1, "target_scale": (0.95, 1.0)}, "min_keep"),
    ],
)
def test_impossible_settings_raise_a_value_error_naming_the_setting(kwargs, key):
    with pytest.raises(ValueError, match=key):
        MultiBlockMaskGenerator(**kwargs)
