"""I-JEPA's multi-block masks, sampled for a whole batch at once with torch ops on any device.

A call returns the context patch indices ``[B, Kc]`` and the target-block patch indices
``[B, M, Kt]`` (flat, row-major, each row sorted ascending). It follows
``facebookresearch/ijepa:src/masks/multiblock.py`` with four deliberate differences:

* every grid position is reachable: block corners are drawn with an inclusive upper bound and a
  block may span the whole grid (the official code never uses the last row and column, ijepa
  PR #40);
* no Python loop over images and no unbounded retry loop: a setting that can never satisfy
  ``min_keep`` raises ``ValueError`` at construction, and an image whose target blocks leave fewer
  than ``min_keep`` visible patches gets its blocks re-drawn a bounded number of times and, if that
  still fails, all its blocks stacked on the first one (which always leaves enough);
* batch equalisation keeps ``Kc`` near the batch *mean* of the context sizes instead of truncating
  every image to the batch minimum: images with more context patches drop a random subset, images
  with fewer are topped up with random non-target patches from outside their context block.
  The context therefore never overlaps a target block, and ``Kc`` is
  ``clamp(round(mean context size), min_keep, min over images of the non-target patch count)``;
* ``min_keep`` means "at least" (the official code wants strictly more).
"""

import math
from typing import Optional, Sequence, Tuple, Union

import torch

Pair = Tuple[float, float]
# I-JEPA's ImageNet masks (src/masks/multiblock.py defaults, configs/in1k_vith14_ep300.yaml).
DEFAULT_MASKS = {
    "num_targets": 4,
    "target_scale": (0.15, 0.2),
    "target_aspect_ratio": (0.75, 1.5),
    "context_scale": (0.85, 1.0),
    "min_keep": 10,
}
# Random ranks among the patches of one kind (context, free); ties are one in a million.
RANK_LEVELS = 2**20


def _check_range(name: str, value: Sequence[float], low: float, high: float) -> Pair:
    if len(value) != 2 or not (low < value[0] <= value[1] <= high):
        raise ValueError(
            f"{name} must be a pair (lo, hi) with {low} < lo <= hi <= {high}, got {tuple(value)}"
        )
    return float(value[0]), float(value[1])


class MultiBlockMaskGenerator:
    def __init__(
        self,
        grid_size: Union[int, Tuple[int, int]],
        num_targets: int = DEFAULT_MASKS["num_targets"],
        target_scale: Pair = DEFAULT_MASKS["target_scale"],
        target_aspect_ratio: Pair = DEFAULT_MASKS["target_aspect_ratio"],
        context_scale: Pair = DEFAULT_MASKS["context_scale"],
        min_keep: int = DEFAULT_MASKS["min_keep"],
        max_tries: int = 20,
    ):
        """Multi-block mask sampler of I-JEPA for a ``grid_size`` patch grid.

        Args:
            grid_size: patch grid (H, W), or one int for a square grid.
            num_targets: target blocks per image (M).
            target_scale: range of a target block's area as a fraction of the grid.
            target_aspect_ratio: range of a target block's height / width.
            context_scale: range of the (square) context block's area as a fraction of the grid.
            min_keep: least number of patches in a target block and in each image's context.
            max_tries: re-draws of an image's target blocks that cover too much of the grid.
        """
        self.height, self.width = (
            (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
        )
        self.num_patches = self.height * self.width
        if self.height < 1 or self.width < 1:
            raise ValueError(f"grid_size must be positive, got {grid_size}")
        if num_targets < 1:
            raise ValueError(f"num_targets must be >= 1, got {num_targets}")
        self.num_targets = int(num_targets)
        self.target_scale = _check_range("target_scale", target_scale, 0.0, 1.0)
        self.target_aspect_ratio = _check_range(
            "target_aspect_ratio", target_aspect_ratio, 0.0, math.inf
        )
        self.context_scale = _check_range("context_scale", context_scale, 0.0, 1.0)
        if not 1 <= min_keep <= self.num_patches:
            raise ValueError(
                f"min_keep must be in [1, {self.num_patches}] for a {self.height}x{self.width} "
                f"grid, got {min_keep}"
            )
        self.min_keep = int(min_keep)
        self.max_tries = int(max_tries)

        # Block sizes are a step function of one uniform draw; scanning it finely finds every
        # size that can occur, so impossible settings fail here instead of mid-training.
        grid = [i / 1000 for i in range(1001)]
        target_areas = [h * w for h, w in (self._target_block(r) for r in grid)]
        if min(target_areas) < self.min_keep:
            raise ValueError(
                f"target_scale={self.target_scale} gives target blocks of {min(target_areas)} "
                f"patches on a {self.height}x{self.width} grid, fewer than min_keep="
                f"{self.min_keep}: raise target_scale or lower min_keep"
            )
        self._max_target_area = max(target_areas)
        if self.num_patches - self._max_target_area < self.min_keep:
            raise ValueError(
                f"a target block of up to {self._max_target_area} patches leaves fewer than "
                f"min_keep={self.min_keep} context patches on a {self.height}x{self.width} grid: "
                "lower target_scale or min_keep"
            )

    def _block(self, scale: Pair, aspect_ratio: Pair, r: float) -> Tuple[int, int]:
        # One draw sets both scale and aspect ratio, as in the official collator.
        s = scale[0] + r * (scale[1] - scale[0])
        a = aspect_ratio[0] + r * (aspect_ratio[1] - aspect_ratio[0])
        area = int(self.num_patches * s)
        h = min(max(round(math.sqrt(area * a)), 1), self.height)
        w = min(max(round(math.sqrt(area / a)), 1), self.width)
        return h, w

    def _target_block(self, r: float) -> Tuple[int, int]:
        return self._block(self.target_scale, self.target_aspect_ratio, r)

    def _corners(self, shape, h, w, device, generator) -> Tuple[torch.Tensor, torch.Tensor]:
        top = torch.randint(0, self.height - h + 1, shape, device=device, generator=generator)
        left = torch.randint(0, self.width - w + 1, shape, device=device, generator=generator)
        return top, left

    def _block_indices(self, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
        rows = top[..., None] + torch.arange(h, device=top.device)  # [..., h]
        cols = left[..., None] + torch.arange(w, device=top.device)  # [..., w]
        return (rows[..., :, None] * self.width + cols[..., None, :]).flatten(-2)  # [..., h*w]

    def _covered(self, target_idx: torch.Tensor) -> torch.Tensor:
        batch_size = target_idx.shape[0]
        covered = torch.zeros(
            batch_size, self.num_patches, dtype=torch.bool, device=target_idx.device
        )
        return covered.scatter_(1, target_idx.flatten(1), True)  # [B, N]

    def __call__(
        self,
        batch_size: int,
        device: Optional[torch.device] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Samples masks for ``batch_size`` images.

        ``generator`` must live on ``device``; the same generator state gives the same masks.

        Returns:
            context_idx ``[B, Kc]`` and target_idx ``[B, M, Kt]``, int64, rows sorted ascending.
        """
        B, M = batch_size, self.num_targets
        r_target, r_context = torch.rand(2, device=device, generator=generator).tolist()
        th, tw = self._target_block(r_target)
        ch, cw = self._block(self.context_scale, (1.0, 1.0), r_context)

        top, left = self._corners((B, M), th, tw, device, generator)
        target_idx = self._block_indices(top, left, th, tw)  # [B, M, Kt]
        covered = self._covered(target_idx)

        if self.num_patches - M * th * tw < self.min_keep:
            target_idx, covered = self._spread_out(
                target_idx, covered, top, left, th, tw, generator
            )

        # Context block minus targets, then equalised around the batch mean (module docstring).
        # Few passes over [B, N]: on a CPU each is a parallel region, costly on a busy machine.
        ctop, cleft = self._corners((B, 1), ch, cw, device, generator)
        rows = torch.arange(self.height, device=covered.device)
        cols = torch.arange(self.width, device=covered.device)
        in_rows = (rows >= ctop) & (rows < ctop + ch)  # [B, H]
        in_cols = (cols >= cleft) & (cols < cleft + cw)  # [B, W]
        in_context = (in_rows[:, :, None] & in_cols[:, None, :]).flatten(1) & ~covered  # [B, N]
        mean_size = round(in_context.sum(1).float().mean().item())
        available = self.num_patches - int(covered.sum(1).max())
        num_context = min(max(mean_size, self.min_keep), available)

        # A random rank per patch; context patches rank first, then free ones, and covered ones
        # last. Integer scores: topk on int32 is a third faster than on floats on a CPU, and
        # adding the bool masks needs no float copies (nor masked_fill_, slow on CPU).
        shape = (B, self.num_patches)
        score = torch.randint(
            0, RANK_LEVELS, shape, dtype=torch.int32, device=covered.device, generator=generator
        )
        score.add_(in_context, alpha=RANK_LEVELS).add_(covered, alpha=-2 * RANK_LEVELS)
        chosen = score.topk(num_context, dim=1, sorted=False).indices  # [B, Kc], unordered
        return self._ascending(chosen), target_idx

    def _ascending(self, idx: torch.Tensor) -> torch.Tensor:
        """Sorts each row of distinct patch indices: a patch's place is the number of chosen
        patches before it, a cumsum over the grid (a third of a row-wise sort's time on CPU)."""
        chosen = torch.zeros(idx.shape[0], self.num_patches, dtype=torch.bool, device=idx.device)
        place = chosen.scatter_(1, idx, True).cumsum(1).gather(1, idx).sub_(1)
        return torch.empty_like(idx).scatter_(1, place, idx)

    def _spread_out(self, target_idx, covered, top, left, h, w, generator):
        """Re-draws the blocks of images left with fewer than ``min_keep`` non-target patches."""
        for _ in range(self.max_tries):
            bad = (~covered).sum(1) < self.min_keep
            if not bool(bad.any()):
                return target_idx, covered
            shape = (int(bad.sum()), self.num_targets)
            top[bad], left[bad] = self._corners(shape, h, w, top.device, generator)
            target_idx = self._block_indices(top, left, h, w)
            covered = self._covered(target_idx)
        # Stacking every block on the first always leaves N - h*w >= min_keep (checked in __init__).
        bad = (~covered).sum(1) < self.min_keep
        top[bad], left[bad] = top[bad, :1], left[bad, :1]
        target_idx = self._block_indices(top, left, h, w)
        return target_idx, self._covered(target_idx)
