"""Where a training step's time goes: ``torch.profiler`` over a few steps of one method, summed by
phase (forward, backward, optimizer, EMA) and by kind of op, then the costliest ops.

Run ``python3 -m bench.profile_step --method cjepa`` (``--help`` for the settings).
"""

import argparse
from collections import defaultdict
from typing import Dict, Optional, Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from bench.methods import build, default_device, image_batch, train_step
from bench.step import add_vit_arguments, recipe_settings, vit_label

PHASES = ("forward", "backward", "optimizer", "ema")
# Kinds of aten ops by name fragment, first match wins; the rest counts as "other".
KINDS = (
    ("SVD (collapse monitors)", ("svd",)),
    ("matmul and attention", ("mm", "linear", "matmul", "attention", "conv")),
    ("norms and activations", ("norm", "gelu", "softmax")),
    ("copies, gathers, layout", ("copy", "cat", "index", "gather", "scatter", "clone", "stack")),
    ("reductions", ("sum", "mean", "std", "var", "svd", "topk", "sort", "max", "min")),
    ("elementwise", ("add", "mul", "div", "sub", "sqrt", "fill", "zero", "where", "pow", "lerp")),
)


def kind(op: str) -> str:
    name = op.split("::")[-1]
    return next((k for k, parts in KINDS if any(p in name for p in parts)), "other")


def summarize(prof, device: torch.device, steps: int) -> Dict[str, Dict[str, float]]:
    """Milliseconds per step by phase (wall, from the labels) and by kind of op (self time)."""
    cuda = device.type == "cuda"
    by_phase, by_kind = defaultdict(float), defaultdict(float)
    for event in prof.key_averages():
        if event.key in PHASES:
            by_phase[event.key] += event.cpu_time_total / 1e3 / steps
        elif event.key.startswith("aten::"):
            self_time = event.self_device_time_total if cuda else event.self_cpu_time_total
            by_kind[kind(event.key)] += self_time / 1e3 / steps
    return {"phase": dict(by_phase), "kind": dict(by_kind)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="cjepa", help="a method spec, as in bench.step")
    add_vit_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps, after one warm-up")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)
    device = default_device(args.device)
    run = build(args.method, args.batch_size, device, **recipe_settings(args))
    batch = image_batch(run, args.batch_size, device)
    train_step(run, batch, 0, args.precision)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(1, args.steps + 1):
            train_step(run, batch, i, args.precision)
    summary = summarize(prof, device, args.steps)
    print(
        f"{args.method}, {vit_label(run)}, batch {args.batch_size}, precision {args.precision}, "
        "ms per step"
    )
    for section, values in summary.items():
        total = sum(values.values())
        print(
            f"by {section}: "
            + ", ".join(
                f"{k} {v:.0f} ({v / total:.0%})"
                for k, v in sorted(values.items(), key=lambda kv: -kv[1])
            )
        )
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort_by, row_limit=args.rows))


if __name__ == "__main__":
    main()
