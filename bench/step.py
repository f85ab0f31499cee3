"""Training-step throughput, model FLOPs and peak memory of cjepa, ijepa, vicreg and byol.

Run ``python3 -m bench.step --help``; ``python3 -m bench`` prints these figures with the others.
"""

import argparse
from dataclasses import dataclass
from statistics import median
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.memory import PeakMemory
from bench.methods import Run, bf16_supported, build, default_device, image_batch, train_step
from bench.timing import Timings, interleave

DEFAULT_SPECS = ("cjepa", "cjepa:pred_layout=single", "ijepa", "vicreg", "byol")


@dataclass
class StepFigures:
    """One method's measured steps: seconds (wall, process CPU), FLOPs and peak memory."""

    wall: List[float]
    cpu: List[float]
    flops: List[int]
    peak_bytes: int
    batch_size: int

    @property
    def images_per_s(self) -> float:
        return self.batch_size / median(self.wall)

    @property
    def images_per_cpu_s(self) -> float:
        return self.batch_size / median(self.cpu)

    def flops_per_s(self, cpu: bool = False) -> float:
        # Step costs vary with the sampled mask sizes, so each step's FLOPs meet its own time.
        return median(f / s for f, s in zip(self.flops, self.cpu if cpu else self.wall))


def resident_tensors(run: Run, batch: List) -> List[torch.Tensor]:
    """What a method keeps across steps: parameters, buffers, inputs, gradients, optimizer state."""
    tensors = list(run.model.parameters()) + list(run.model.buffers()) + batch[1]
    tensors += [p.grad for p in run.model.parameters() if p.grad is not None]
    for state in run.optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    return tensors


def others_bytes(run: Run, batch: List) -> int:
    """CUDA memory held by everything but this method: the other methods' state."""
    resident = sum(t.untyped_storage().nbytes() for t in resident_tensors(run, batch))
    return torch.cuda.memory_allocated(batch[2].device) - resident


def count_step(run: Run, batch: List, batch_idx: int, precision: str) -> Tuple[int, int]:
    """Model FLOPs (forward and backward, torch's FLOP counter) and peak memory of one step: the
    method's parameters, gradients, optimizer state, inputs, activations and temporaries."""
    device = batch[2].device
    counter = FlopCounterMode(display=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        others = others_bytes(run, batch)
        with counter:
            train_step(run, batch, batch_idx, precision)
        return counter.get_total_flops(), torch.cuda.max_memory_allocated(device) - others
    # The list of resident tensors must not outlive the call: it would keep old gradients alive.
    memory = PeakMemory(resident_tensors(run, batch))
    with counter, memory:
        train_step(run, batch, batch_idx, precision)
    return counter.get_total_flops(), memory.peak


def step_tasks(runs: Sequence[Run], batches: Dict[str, List], precision: str) -> Dict:
    """One timed task per method; the round index is the batch index, which seeds C-JEPA's masks."""
    return {
        run.name: (lambda i, run=run: train_step(run, batches[run.name], i, precision))
        for run in runs
    }


def build_runs(
    specs: Sequence[str], batch_size: int, device: torch.device, args: argparse.Namespace
) -> Tuple[List[Run], Dict[str, List]]:
    """The methods of ``specs`` from the recipes and ViT that ``args`` name, and a batch each."""
    channels_last, settings = not args.no_channels_last, recipe_settings(args)
    runs = [build(spec, batch_size, device, channels_last, **settings) for spec in specs]
    batches = {run.name: image_batch(run, batch_size, device) for run in runs}
    return runs, batches


def figures(
    runs: Sequence[Run],
    batches: Dict[str, List],
    timings: Timings,
    warmup: int,
    batch_size: int,
    precision: str,
) -> Dict[str, StepFigures]:
    """Pairs the timed steps with an untimed FLOP and memory pass over the same batch indices
    (one step for methods without masks, whose shapes never change)."""
    results = {}
    for run in runs:
        indices = range(warmup, warmup + len(timings.wall[run.name]))
        if not hasattr(run.model, "mask_generator"):
            indices = indices[:1]
        counts = [count_step(run, batches[run.name], i, precision) for i in indices]
        flops = [flop for flop, _ in counts] * (len(timings.wall[run.name]) // len(counts))
        peak = max(peak for _, peak in counts)
        results[run.name] = StepFigures(
            timings.wall[run.name], timings.cpu[run.name], flops, peak, batch_size
        )
    return results


def format_table(results: Dict[str, StepFigures], cpu_time: bool, reference: str = "vicreg") -> str:
    """Per method: images/s and its ratio to ``reference`` (also by process CPU time when
    ``cpu_time``), ms per step, GFLOP per image, achieved GFLOP/s and peak memory."""
    ref = results.get(reference)
    width = max(30, 2 + max(map(len, results)))
    header = f"{'method':<{width}}{'img/s':>8}{'x ' + reference:>10}"
    header += f"{'x (CPU time)':>14}" if cpu_time else ""
    lines = [header + f"{'ms/step':>9}{'GFLOP/img':>11}{'GFLOP/s':>9}{'peak MiB':>10}"]
    for name, fig in results.items():
        line = f"{name:<{width}}{fig.images_per_s:>8.1f}"
        line += f"{fig.images_per_s / ref.images_per_s:>10.2f}" if ref else f"{'-':>10}"
        if cpu_time:
            line += f"{fig.images_per_cpu_s / ref.images_per_cpu_s:>14.2f}" if ref else f"{'-':>14}"
        gflop_per_image = median(fig.flops) / fig.batch_size / 1e9
        line += f"{1e3 * median(fig.wall):>9.0f}{gflop_per_image:>11.2f}"
        lines.append(line + f"{fig.flops_per_s() / 1e9:>9.0f}{fig.peak_bytes / 2**20:>10.0f}")
    return "\n".join(lines)


def add_vit_arguments(parser: argparse.ArgumentParser, recipe: str = "cifar") -> None:
    """``--recipe`` (the scripts/pretrain folder the methods are built from) and the ViT."""
    parser.add_argument("--recipe", default=recipe, help="scripts/pretrain folder of the recipes")
    parser.add_argument("--backbone", default=None, help="ViT name (default: the recipe's)")
    parser.add_argument("--img-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--patch-size", type=int, default=None, help="default: the recipe's")


def recipe_settings(args: argparse.Namespace) -> dict:
    """``build``'s keywords from the arguments of ``add_vit_arguments``."""
    keys = ("recipe", "backbone", "img_size", "patch_size")
    return {key: getattr(args, key) for key in keys}


def vit_label(run: Run) -> str:
    """``"vit_small, 32 px, patch 4"``: the ViT a run trains."""
    vit = run.model.cfg.backbone
    return f"{vit.name}, {vit.kwargs.img_size} px, patch {vit.kwargs.patch_size}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_SPECS),
        help="method specs, e.g. cjepa 'cjepa:pred_layout=single' vicreg",
    )
    add_vit_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="measured steps per method")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per method first")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument(
        "--precision",
        choices=("32", "bf16"),
        default="32",
        help="32, or Lightning's bf16-mixed autocast",
    )
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch's default)")


def setup(args: argparse.Namespace) -> torch.device:
    """The device to run on, after checking the precision and setting the CPU threads."""
    device = default_device(args.device)
    if args.precision == "bf16" and not bf16_supported(device):
        raise SystemExit(f"bf16 is not supported on {device}")
    if args.threads:
        torch.set_num_threads(args.threads)
    return device


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    device = setup(args)
    runs, batches = build_runs(args.methods, args.batch_size, device, args)
    timings = interleave(step_tasks(runs, batches, args.precision), args.steps, args.warmup, device)
    results = figures(runs, batches, timings, args.warmup, args.batch_size, args.precision)
    print(format_table(results, cpu_time=device.type == "cpu"))


if __name__ == "__main__":
    main()
