"""All figures of the benchmark in one run: ``python3 -m bench`` (``--help`` for the settings).

Training steps of every method, the matmul peak, and the mask generator and collapse monitors of
each C-JEPA step are timed in the same interleaved rounds; the mask generator against I-JEPA's loop
runs after them.
"""

import argparse
import os
import platform
from statistics import median
from typing import Optional, Sequence

import torch

from bench import flops, masks, step
from bench.methods import MONITOR_EVERY
from solo_cjepa.monitors import effective_rank, mean_std


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    step.add_arguments(parser)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--mask-batch-size", type=int, default=256)
    parser.add_argument("--grids", type=int, nargs="+", default=[14, 8])
    parser.add_argument("--mask-repeats", type=int, default=10)
    args = parser.parse_args(argv)
    device = step.setup(args)
    on_cpu = device.type == "cpu"

    runs, batches = step.build_runs(args.methods, args.batch_size, device, args)
    tasks = step.step_tasks(runs, batches, args.precision)
    dtype = torch.float32 if args.precision == "32" else torch.bfloat16
    tasks["matmul"] = flops.matmul_task(device, args.matmul_size, dtype)
    jepas = [run for run in runs if hasattr(run.model, "mask_generator")]
    for run in jepas:
        tasks[f"masks of {run.name}"] = lambda i, g=run.model.mask_generator: g(
            args.batch_size, i, device
        )
        embs = torch.randn(2, args.batch_size, run.model.features_dim, device=device)
        tasks[f"monitors of {run.name}"] = lambda i, embs=embs: [
            (mean_std(e), effective_rank(e).item()) for e in embs
        ]
    load_before = os.getloadavg()[0]
    timings = step.interleave(tasks, args.steps, args.warmup, device)
    results = step.figures(runs, batches, timings, args.warmup, args.batch_size, args.precision)
    mask_tasks = masks.mask_tasks(args.mask_batch_size, args.grids, device)
    mask_timings = step.interleave(mask_tasks, args.mask_repeats, 1, device)

    name = torch.cuda.get_device_name(device) if not on_cpu else cpu_name()
    print(
        f"device {device} ({name}), {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(
        f"training step: {args.recipe} recipes, {step.vit_label(runs[0])}, batch "
        f"{args.batch_size}, precision {args.precision}, median of {args.steps} steps after "
        f"{args.warmup} warm-up, interleaved"
    )
    print(step.format_table(results, cpu_time=on_cpu))

    mm = flops.matmul_flops(args.matmul_size)
    peak, cpu_peak = (mm / median(timings.wall["matmul"]), mm / median(timings.cpu["matmul"]))
    print(
        f"\nmatmul peak ({dtype}, {args.matmul_size}^2 mm, same rounds): {peak / 1e9:.0f} GFLOP/s"
    )
    for run in jepas:
        fig = results[run.name]
        share = median(timings.wall[f"masks of {run.name}"]) / median(fig.wall)
        line = f"{run.name}: {fig.flops_per_s() / peak:.0%} of peak"
        line += f" ({fig.flops_per_s(cpu=True) / cpu_peak:.0%} by CPU time)" if on_cpu else ""
        monitors = median(timings.wall[f"monitors of {run.name}"]) / median(fig.wall)
        print(
            line + f"; mask generator (B={args.batch_size}) {share:.2%} of the step; collapse "
            f"monitors {monitors:.2%} at every step, {monitors / MONITOR_EVERY:.3%} at every "
            f"{MONITOR_EVERY}th"
        )

    print(f"\nmask generator vs I-JEPA's per-image loop, B={args.mask_batch_size}")
    print(masks.format_table(mask_timings.wall, args.grids))


if __name__ == "__main__":
    main()
