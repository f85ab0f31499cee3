"""I-JEPA's multi-block masks for a whole batch: context and target-block patch indices drawn
with torch ops on the batch's device, a pure function of a seed, with no host synchronisation.
"""

import math
import random
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

Pair = Tuple[float, float]
Size = Tuple[int, int]
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


def _coverage(side: int, size: int) -> list:
    """Probability that a block of ``size`` cells, its start uniform in ``[0, side - size]``,
    covers each cell of a line of ``side`` cells."""
    starts = side - size + 1
    return [(min(i, side - size) - max(0, i - size + 1) + 1) / starts for i in range(side)]


class MultiBlockMaskGenerator:
    """A call returns the context patch indices ``[B, Kc]`` and the target-block patch indices
    ``[B, M, Kt]`` (flat, row-major, each row sorted ascending). It follows
    ``facebookresearch/ijepa:src/masks/multiblock.py`` with these deliberate differences:

    * every grid position is reachable: block corners are drawn with an inclusive upper bound
      and a block may span the whole grid (the official code never uses the last row and
      column, ijepa PR #40);
    * no Python loop over images and no unbounded retry loop: a setting that can never satisfy
      ``min_keep`` raises ``ValueError`` at construction;
    * the host never waits for the device: block sizes come from a host generator seeded like
      the device one, and ``Kc`` from the block geometry (``num_context``), so the batch is
      equalised around the expected context size rather than truncated to the batch minimum.
      Images with more context patches drop a random subset, images with fewer are topped up
      with random non-target patches from outside their context block; an image whose target
      blocks leave fewer than ``Kc`` free patches gets its blocks re-drawn a few times and, if
      that still fails, all stacked on the first one (which always leaves enough). The context
      never overlaps a target block;
    * ``min_keep`` means "at least" (the official code wants strictly more).
    """

    def __init__(
        self,
        grid_size: Union[int, Tuple[int, int]],
        num_targets: int = DEFAULT_MASKS["num_targets"],
        target_scale: Pair = DEFAULT_MASKS["target_scale"],
        target_aspect_ratio: Pair = DEFAULT_MASKS["target_aspect_ratio"],
        context_scale: Pair = DEFAULT_MASKS["context_scale"],
        min_keep: int = DEFAULT_MASKS["min_keep"],
        max_tries: int = 2,
    ):
        """Multi-block mask sampler of I-JEPA for a ``grid_size`` patch grid.

        Args:
            grid_size: patch grid (H, W), or one int for a square grid.
            num_targets: target blocks per image (M).
            target_scale: range of a target block's area as a fraction of the grid.
            target_aspect_ratio: range of a target block's height / width.
            context_scale: range of the (square) context block's area as a fraction of the grid.
            min_keep: least number of patches in a target block and in each image's context.
            max_tries: re-draws of an image's target blocks that leave too few free patches.
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
        self._num_context: Dict[Tuple[int, Size, Size], int] = {}

        # Block sizes are a step function of one uniform draw; scanning it finely finds every
        # size that can occur, so impossible settings fail here instead of mid-training.
        grid = [i / 1000 for i in range(1001)]
        target_sizes = {self._target_block(r) for r in grid}
        target_areas = [h * w for h, w in target_sizes]
        if min(target_areas) < self.min_keep:
            raise ValueError(
                f"target_scale={self.target_scale} gives target blocks of {min(target_areas)} "
                f"patches on a {self.height}x{self.width} grid, fewer than min_keep="
                f"{self.min_keep}: raise target_scale or lower min_keep"
            )
        if self.num_patches - max(target_areas) < self.min_keep:
            raise ValueError(
                f"a target block of up to {max(target_areas)} patches leaves fewer than "
                f"min_keep={self.min_keep} context patches on a {self.height}x{self.width} grid: "
                "lower target_scale or min_keep"
            )
        # Simulated once here, so that no training step pays for it.
        self._free = {size: self._free_counts(*size) for size in target_sizes}

    def _block(self, scale: Pair, aspect_ratio: Pair, r: float) -> Size:
        # One draw sets both scale and aspect ratio, as in the official collator.
        s = scale[0] + r * (scale[1] - scale[0])
        a = aspect_ratio[0] + r * (aspect_ratio[1] - aspect_ratio[0])
        area = int(self.num_patches * s)
        h = min(max(round(math.sqrt(area * a)), 1), self.height)
        w = min(max(round(math.sqrt(area / a)), 1), self.width)
        return h, w

    def _target_block(self, r: float) -> Size:
        return self._block(self.target_scale, self.target_aspect_ratio, r)

    def num_context(self, batch_size: int, target: Size, context: Size) -> int:
        """``Kc`` for a batch with these block sizes: the expectation of ``min(mean context size,
        least free patch count in the batch)``, the size at which the context of every image
        but a few fits among its free patches. Exact for the context size; the free counts come
        from a fixed-seed simulation of 4096 images per target size, run at construction. At
        least ``min_keep`` and at most what one target block leaves free, so re-drawing or
        stacking the target blocks can always make room for it."""
        key = (batch_size, target, context)
        if key not in self._num_context:
            (th, tw), (ch, cw) = target, context
            t_rows, t_cols = _coverage(self.height, th), _coverage(self.width, tw)
            c_rows, c_cols = _coverage(self.height, ch), _coverage(self.width, cw)
            context_size = sum(
                c_rows[i] * c_cols[j] * (1 - t_rows[i] * t_cols[j]) ** self.num_targets
                for i in range(self.height)
                for j in range(self.width)
            )
            if target not in self._free:  # a size the scan in __init__ missed
                self._free[target] = self._free_counts(th, tw)
            free = self._free[target]
            # E[min(a, least of B free counts)] = sum over k <= a of P(free >= k)^B
            expected = sum(
                np.mean(free >= k) ** batch_size for k in range(1, round(context_size) + 1)
            )
            keep = min(max(round(expected), self.min_keep), self.num_patches - th * tw)
            self._num_context[key] = keep
        return self._num_context[key]

    def _free_counts(self, h: int, w: int, samples: int = 4096) -> np.ndarray:
        """Patches left free by the target blocks of ``samples`` simulated images (NumPy: the
        host must not wait on the device for it)."""
        rng = np.random.default_rng(0)
        top = rng.integers(0, self.height - h + 1, (samples, self.num_targets, 1, 1))
        left = rng.integers(0, self.width - w + 1, (samples, self.num_targets, 1, 1))
        rows = np.arange(self.height)[:, None]
        cols = np.arange(self.width)[None, :]
        inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
        return self.num_patches - inside.any(1).sum((1, 2))

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
        self, batch_size: int, seed: int, device: Optional[torch.device] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Samples masks for ``batch_size`` images on ``device``, a pure function of ``seed``.

        Returns:
            context_idx ``[B, Kc]`` and target_idx ``[B, M, Kt]``, int64, rows sorted ascending.
        """
        B, M = batch_size, self.num_targets
        host = random.Random(seed)
        generator = torch.Generator(device=device or "cpu").manual_seed(seed)
        th, tw = self._target_block(host.random())
        ch, cw = self._block(self.context_scale, (1.0, 1.0), host.random())
        num_context = self.num_context(B, (th, tw), (ch, cw))

        top, left = self._corners((B, M), th, tw, device, generator)
        if self.num_patches - M * th * tw < num_context:  # blocks that overlap too little
            top, left = self._make_room(top, left, th, tw, num_context, generator)
        target_idx = self._block_indices(top, left, th, tw)  # [B, M, Kt]
        covered = self._covered(target_idx)

        # A random rank per patch: context-block patches rank first, then free ones, and covered
        # ones last; the Kc best of each row are the context.
        ctop, cleft = self._corners((B, 1), ch, cw, device, generator)
        rows = torch.arange(self.height, device=covered.device)
        cols = torch.arange(self.width, device=covered.device)
        in_rows = (rows >= ctop) & (rows < ctop + ch)  # [B, H]
        in_cols = (cols >= cleft) & (cols < cleft + cw)  # [B, W]
        in_context = (in_rows[:, :, None] & in_cols[:, None, :]).flatten(1)  # [B, N]
        score = torch.randint(
            0,
            RANK_LEVELS,
            covered.shape,
            dtype=torch.int32,
            device=covered.device,
            generator=generator,
        )
        score.add_(in_context, alpha=RANK_LEVELS).add_(covered, alpha=-3 * RANK_LEVELS)
        chosen = score.topk(num_context, dim=1, sorted=False).indices  # [B, Kc], unordered
        return self._ascending(chosen), target_idx

    def _ascending(self, idx: torch.Tensor) -> torch.Tensor:
        """Sorts each row of distinct patch indices: a patch's place is the number of chosen
        patches before it, a cumsum over the grid."""
        chosen = torch.zeros(idx.shape[0], self.num_patches, dtype=torch.bool, device=idx.device)
        place = chosen.scatter_(1, idx, True).cumsum(1).gather(1, idx).sub_(1)
        return torch.empty_like(idx).scatter_(1, place, idx)

    def _make_room(self, top, left, h, w, num_context, generator):
        """Re-draws the target blocks of images left with fewer than ``num_context`` free patches,
        a fixed number of times, then stacks each remaining such image's blocks on its first."""

        def too_few(top, left):
            covered = self._covered(self._block_indices(top, left, h, w))
            return (self.num_patches - covered.sum(1, keepdim=True)) < num_context  # [B, 1]

        for _ in range(self.max_tries):
            new_top, new_left = self._corners(top.shape, h, w, top.device, generator)
            redraw = too_few(top, left)
            top, left = torch.where(redraw, new_top, top), torch.where(redraw, new_left, left)
        # One block leaves N - h*w >= num_context free patches (num_context).
        stack = too_few(top, left)
        return torch.where(stack, top[:, :1], top), torch.where(stack, left[:, :1], left)
