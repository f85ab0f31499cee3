"""The machine's measured matmul peak, against which a training step's achieved FLOP/s is compared.

``python3 -m bench`` times the matmul interleaved with the training steps, so both see the same
load; ``python3 -m bench.flops`` prints the peak alone.
"""

import argparse
from statistics import median
from typing import Callable, Optional, Sequence

import torch

from bench.methods import bf16_supported, default_device
from bench.timing import interleave


def matmul_task(device: torch.device, size: int, dtype: torch.dtype) -> Callable[[int], None]:
    """A timed task: one ``size``-square ``torch.mm``; ``matmul_flops(size)`` FLOPs each."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return lambda i: torch.mm(a, b)


def matmul_flops(size: int) -> int:
    return 2 * size**3


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    args = parser.parse_args(argv)
    device = default_device(args.device)
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_supported(device) else [])
    tasks = {str(dtype): matmul_task(device, args.size, dtype) for dtype in dtypes}
    for name, seconds in interleave(tasks, args.repeats, 2, device).wall.items():
        print(
            f"{name} mm {args.size}: {matmul_flops(args.size) / median(seconds) / 1e9:.0f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
