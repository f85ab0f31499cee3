"""Mask-generator time per batch: ``MultiBlockMaskGenerator`` against a per-image Python loop that
implements I-JEPA's algorithm (``facebookresearch/ijepa:src/masks/multiblock.py``), written here
as the reference. Run ``python3 -m bench.masks``.
"""

import argparse
import math
from statistics import median
from typing import Dict, Optional, Sequence, Tuple

import torch

from bench.methods import default_device
from bench.timing import interleave
from solo_cjepa.masks import DEFAULT_MASKS, MultiBlockMaskGenerator


class IJEPAMaskLoop:
    """I-JEPA's collator: block sizes shared by the batch; for each image, M target blocks and a
    context block redrawn until big enough, the context minus the targets; then every index list
    truncated to the batch minimum."""

    def __init__(self, grid: int, **masks):
        masks = {**DEFAULT_MASKS, **masks}
        self.height = self.width = grid
        self.num_targets, self.min_keep = masks["num_targets"], masks["min_keep"]
        self.target_scale = masks["target_scale"]
        self.target_aspect_ratio = masks["target_aspect_ratio"]
        self.context_scale = masks["context_scale"]

    def _block_size(self, generator, scale, aspect_ratio) -> Tuple[int, int]:
        r = torch.rand(1, generator=generator).item()
        max_keep = int(self.height * self.width * (scale[0] + r * (scale[1] - scale[0])))
        a = aspect_ratio[0] + r * (aspect_ratio[1] - aspect_ratio[0])
        h, w = round(math.sqrt(max_keep * a)), round(math.sqrt(max_keep / a))
        return min(h, self.height - 1), min(w, self.width - 1)

    def _block(self, size, acceptable_regions=None):
        h, w = size
        tries, timeout = 0, 20
        while True:
            top = torch.randint(0, self.height - h, (1,))
            left = torch.randint(0, self.width - w, (1,))
            mask = torch.zeros((self.height, self.width), dtype=torch.int32)
            mask[top : top + h, left : left + w] = 1
            for region in (acceptable_regions or [])[
                : max(len(acceptable_regions or []) - tries, 0)
            ]:
                mask *= region
            idx = torch.nonzero(mask.flatten()).squeeze(1)
            if len(idx) > self.min_keep:
                complement = torch.ones((self.height, self.width), dtype=torch.int32)
                complement[top : top + h, left : left + w] = 0
                return idx, complement
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, 20

    def __call__(self, batch_size: int, generator: torch.Generator):
        target_size = self._block_size(generator, self.target_scale, self.target_aspect_ratio)
        context_size = self._block_size(generator, self.context_scale, (1.0, 1.0))
        targets, contexts = [], []
        for _ in range(batch_size):
            blocks = [self._block(target_size) for _ in range(self.num_targets)]
            targets.append([idx for idx, _ in blocks])
            contexts.append(self._block(context_size, [c for _, c in blocks])[0])
        keep_target = min(len(idx) for blocks in targets for idx in blocks)
        keep_context = min(len(idx) for idx in contexts)
        target_idx = torch.stack([torch.stack([i[:keep_target] for i in b]) for b in targets])
        return torch.stack([idx[:keep_context] for idx in contexts]), target_idx


def mask_tasks(batch_size: int, grids: Sequence[int], device: torch.device) -> Dict:
    """Timed tasks: the vectorised generator on ``device`` and the CPU reference loop, per grid.
    I-JEPA's min_keep 10 exceeds a target block below 14x14, so smaller grids keep 4."""
    tasks = {}
    for grid in grids:
        min_keep = 10 if grid >= 14 else 4
        generator = MultiBlockMaskGenerator(grid, min_keep=min_keep)
        reference = IJEPAMaskLoop(grid, min_keep=min_keep)
        tasks[f"generator {grid}x{grid}"] = lambda i, g=generator: g(batch_size, i, device)
        tasks[f"reference {grid}x{grid}"] = lambda i, r=reference: r(
            batch_size, torch.Generator().manual_seed(i)
        )
    return tasks


def format_table(seconds: Dict[str, list], grids: Sequence[int]) -> str:
    lines = [f"{'grid':<8}{'generator ms':>14}{'reference ms':>14}{'speedup':>9}"]
    for grid in grids:
        fast = median(seconds[f"generator {grid}x{grid}"])
        slow = median(seconds[f"reference {grid}x{grid}"])
        lines.append(
            f"{f'{grid}x{grid}':<8}{1e3 * fast:>14.2f}{1e3 * slow:>14.1f}{slow / fast:>9.0f}"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--grids", type=int, nargs="+", default=[14, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    args = parser.parse_args(argv)
    device = default_device(args.device)
    tasks = mask_tasks(args.batch_size, args.grids, device)
    timings = interleave(tasks, args.repeats, 1, device)
    print(f"B={args.batch_size}")
    print(format_table(timings.wall, args.grids))


if __name__ == "__main__":
    main()
