"""The training loop against the bare step, on the shipped Fashion-MNIST recipe: images/s of the
bare training step (bench.step's: the recipe's model, one batch kept in memory) and of real runs
through the launcher (``pretrain``: Trainer.fit over the real Fashion-MNIST loaders, online
classifiers on, no validation, no progress bar), once with solo's per-image PIL loader in the
recipe's worker processes and once with ``data.batched_augmentations``; the ratio of each loop to
the bare step, and where a loop step's time goes (Lightning's SimpleProfiler).

    python3 -m bench.loop [--steps 150] [--warmup 10] [--method cjepa] [-- loop overrides]

Overrides after ``--`` are hydra's, for the launcher's runs (e.g. ``data.num_workers=4``).
"""

import argparse
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch import Callback

from bench.__main__ import cpu_name
from bench.methods import RECIPES, build, default_device, image_batch, recipes, train_step
from bench.step import vit_label
from bench.timing import interleave
from solo_cjepa.launch.run import pretrain

RECIPE = "fashion-mnist"
LOOPS = {"per-image PIL loader": False, "batched augmentations": True}
# Lightning's profiler actions, by the phase of a training step they time.
PHASES = {
    "waiting for the loader's next batch": r"\[_TrainingEpochLoop\]\.train_dataloader_next",
    "batch to the device": r"\[Strategy\]\w+\.batch_to_device",
    "batched augmentation (callback)": r"\[Callback\]BatchAugmentation\.on_train_batch_start",
    "forward, backward, optimizer step": r"run_training_batch",
    "EMA update (the module's on_train_batch_end)": r"\[LightningModule\]\w+\.on_train_batch_end",
}
OTHER = "the rest: Lightning's hooks, logging, LR schedule"


class StepClock(Callback):
    """The time at the end of every training step."""

    def __init__(self):
        self.ends: List[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ends.append(time.perf_counter())


@dataclass
class Loop:
    """A measured loop: seconds per step, overall and by phase, over its steady steps, and the
    worker processes of its training loader."""

    seconds: float
    phases: Dict[str, Optional[float]]
    workers: int


def run_loop(method: str, batched: bool, args: argparse.Namespace, extra: Sequence[str]) -> Loop:
    """Trains ``warmup + steps`` steps of the recipe through the launcher and times the last
    ``steps``: the whole step from the clock, its phases from the profiler."""
    precision = "32-true" if args.precision == "32" else "bf16-mixed"
    accelerator = "cpu" if args.device.type == "cpu" else "gpu"
    with tempfile.TemporaryDirectory() as logs:
        overrides = [
            f"optimizer.batch_size={args.batch_size}",
            f"data.batched_augmentations={batched}",
            f"accelerator={accelerator}",
            "devices=1",
            f"precision={precision}",
            "max_epochs=1",
            f"++limit_train_batches={args.warmup + args.steps}",
            "++limit_val_batches=0",
            "++num_sanity_val_steps=0",
            "++enable_progress_bar=False",
            "++enable_model_summary=False",
            "++profiler=simple",
            "checkpoint.enabled=False",
            f"checkpoint.dir={logs}",
            *([f"backbone.name={args.backbone}"] if args.backbone else []),
            *extra,
        ]
        with initialize_config_dir(config_dir=str(RECIPES / RECIPE), version_base="1.2"):
            cfg = compose(config_name=method, overrides=overrides)
        clock = StepClock()
        trainer = pretrain(cfg, callbacks=[clock])
    steady = args.steps
    seconds = (clock.ends[-1] - clock.ends[-steady - 1]) / steady
    durations = trainer.profiler.recorded_durations
    phases = {}
    for phase, pattern in PHASES.items():
        # one call per step (a loader of known length is not prefetched): the last `steps`
        calls = [d[-steady:] for name, d in durations.items() if re.fullmatch(pattern, name)]
        phases[phase] = sum(sum(c) for c in calls) / steady if calls else None
    phases[OTHER] = seconds - sum(v for v in phases.values() if v is not None)
    return Loop(seconds, phases, trainer.train_dataloader.num_workers)


def bare_step(method: str, args: argparse.Namespace) -> Tuple[float, str]:
    """Seconds per bare step (mean of ``steps`` after ``warmup``) and the ViT it trains."""
    run = build(method, args.batch_size, args.device, recipe=RECIPE, backbone=args.backbone)
    batch = image_batch(run, args.batch_size, args.device)
    task = {"bare": lambda i: train_step(run, batch, i, args.precision)}
    timings = interleave(task, args.steps, args.warmup, args.device)
    return sum(timings.wall["bare"]) / args.steps, vit_label(run)


def format_report(bare: float, loops: Dict[str, Loop], batch_size: int) -> str:
    lines = [f"{'':<48}{'img/s':>8}{'x bare':>8}"]
    lines.append(f"{'bare step (one batch kept in memory)':<48}{batch_size / bare:>8.1f}{1:>8.2f}")
    for name, loop in loops.items():
        label = f"loop, {name}, {loop.workers} workers"
        lines.append(f"{label:<48}{batch_size / loop.seconds:>8.1f}{bare / loop.seconds:>8.2f}")
    lines.append("\nwhere a loop step's time goes, ms per step:")
    lines.append(f"{'':<52}" + "".join(f"{name[:22]:>24}" for name in loops))
    for phase in [*PHASES, OTHER]:
        values = [loop.phases[phase] for loop in loops.values()]
        cells = "".join(f"{'-' if v is None else f'{1e3 * v:.1f}':>24}" for v in values)
        lines.append(f"  {phase:<50}" + cells)
    totals = "".join(f"{1e3 * loop.seconds:>24.1f}" for loop in loops.values())
    lines.append(f"  {'total':<50}" + totals)
    lines.append(f"  {'(bare step: forward, backward, optimizer, EMA)':<50}{1e3 * bare:>24.1f}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.loop", description=__doc__)
    parser.add_argument("--method", default="cjepa", choices=recipes(RECIPE))
    parser.add_argument("--backbone", default=None, help="ViT name (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=128, help="the recipe's")
    parser.add_argument("--steps", type=int, default=150, help="measured steps of each")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps of each first")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch's default)")
    args, extra = parser.parse_known_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1 (a step's time runs from the one before)")
    extra = [e for e in extra if e != "--"]  # hydra overrides of the recipe, e.g. data.fraction
    args.device = default_device(args.device)
    if args.precision == "bf16" and args.device.type == "cpu":
        raise SystemExit("--precision bf16: the launcher trains in 32 bit on a CPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the profiler's own table

    load_before = os.getloadavg()[0]
    bare, vit = bare_step(args.method, args)
    loops = {name: run_loop(args.method, batched, args, extra) for name, batched in LOOPS.items()}

    on_cpu = args.device.type == "cpu"
    name = cpu_name() if on_cpu else torch.cuda.get_device_name(args.device)
    print(
        f"\ndevice {args.device} ({name}), {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{args.method} on scripts/pretrain/{RECIPE} ({vit}), batch {args.batch_size}, precision "
        f"{args.precision}, mean of {args.steps} steps after {args.warmup} warm-up"
    )
    print(format_report(bare, loops, args.batch_size))


if __name__ == "__main__":
    main()
