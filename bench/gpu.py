"""The GPU benchmark: the ImageNet recipes of cjepa (both predictor layouts), ijepa, vicreg and byol
on ViT-B/16 at 224 px, batch 128, bf16, eager and compiled, then the DALI GPU pipeline on
generated JPEGs. Run ``python3 -m bench.gpu`` on a CUDA machine (``--help`` for the settings).
"""

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from statistics import median
from types import SimpleNamespace
from typing import Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from bench import flops, step
from bench.methods import Run, synchronize, train_step
from bench.syncs import HostSyncCounter, cuda_sync_warnings

# Built from scripts/pretrain/imagenet: ViT-B/16 at 224 px, I-JEPA's predictor (384 wide, 6 deep)
# and masks, solo's heads.
SPECS = ("cjepa", "cjepa:pred_layout=single", "ijepa", "vicreg", "byol")
REPO = Path(__file__).resolve().parents[1]


def compiled(spec: str) -> str:
    return spec + ("," if ":" in spec else ":") + "compile=true"


def host_syncs(run: Run, batch: List, batch_idx: int, precision: str) -> int:
    """Host synchronisations of one training step: torch's CUDA sync debug mode on a GPU, the
    conversions and blocking ops ``HostSyncCounter`` sees on a CPU."""
    if batch[2].device.type == "cuda":
        with cuda_sync_warnings() as syncs:
            train_step(run, batch, batch_idx, precision)
            synchronize(batch[2].device)
        return len(syncs)
    with HostSyncCounter() as counter:
        train_step(run, batch, batch_idx, precision)
    return counter.total


def peak_bytes(run: Run, batch: List, batch_idx: int, precision: str, fallback: int) -> int:
    """Peak memory of a compiled step from CUDA's allocator, less the other methods' resident
    state (as ``step.count_step``); the CPU tracker sees no compiled kernels, so on a CPU the
    eager twin's figure stands in."""
    device = batch[2].device
    if device.type != "cuda":
        return fallback
    torch.cuda.reset_peak_memory_stats(device)
    others = step.others_bytes(run, batch)
    train_step(run, batch, batch_idx, precision)
    return torch.cuda.max_memory_allocated(device) - others


def write_jpegs(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` random-noise JPEGs of ImageNet-like sizes in two class folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = rng.integers(300, 500, 2)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = folder / f"class{i % 2}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
    return folder


def _endless(loader: Iterable) -> Iterator:
    while True:  # the DALI iterator resets itself at the end of an epoch
        yield from loader


def dali_images_per_s(
    device: torch.device, batch_size: int, batches: int, images: int, threads: int
) -> float:
    """Images/s of the shipped ``imagenet-100/cjepa-dali.yaml`` pipeline (decoding and I-JEPA's
    crop on the GPU; DALI's CPU mode elsewhere) over ``batches`` batches after two warm-up ones.
    """
    from hydra import compose, initialize_config_dir

    from solo_cjepa.launch.data.dali import pretrain_datamodule
    from solo_cjepa.launch.run import prepare_pretrain_cfg

    with tempfile.TemporaryDirectory() as tmp:
        data = write_jpegs(Path(tmp), images)
        overrides = [
            f"data.train_path={data}",
            "data.val_path=null",
            f"optimizer.batch_size={batch_size}",
            f"data.num_workers={threads}",
            f"dali.device={'gpu' if device.type == 'cuda' else 'cpu'}",
            "devices=1",
        ]
        config_dir = str(REPO / "scripts" / "pretrain" / "imagenet-100")
        with initialize_config_dir(config_dir=config_dir, version_base="1.2"):
            cfg = prepare_pretrain_cfg(compose(config_name="cjepa-dali", overrides=overrides))
        module = pretrain_datamodule(cfg)
        module.trainer = SimpleNamespace(local_rank=0, global_rank=0, world_size=1)
        module.setup("fit")
        loader = _endless(module.train_dataloader())
        for _ in range(2):
            next(loader)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        synchronize(device)
        return batches * batch_size / (time.perf_counter() - start)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gpu", description=__doc__)
    parser.add_argument("--methods", nargs="+", default=list(SPECS))
    step.add_vit_arguments(parser, recipe="imagenet")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", choices=("32", "bf16"), default="bf16")
    parser.add_argument("--steps", type=int, default=10, help="measured steps per method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--no-compile", action="store_true", help="eager runs only")
    parser.add_argument("--dali-images", type=int, default=1024, help="0: skip DALI")
    parser.add_argument("--dali-batches", type=int, default=6)
    parser.add_argument("--dali-threads", type=int, default=8)
    parser.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    args = parser.parse_args(argv)
    args.no_channels_last = False
    device = step.setup(args)

    specs = list(args.methods) + ([] if args.no_compile else [compiled(s) for s in args.methods])
    runs, batches = step.build_runs(specs, args.batch_size, device, args)
    tasks = step.step_tasks(runs, batches, args.precision)
    dtype = torch.float32 if args.precision == "32" else torch.bfloat16
    tasks["matmul"] = flops.matmul_task(device, args.matmul_size, dtype)
    compile_start = time.perf_counter()
    timings = step.interleave(tasks, args.steps, args.warmup, device)
    seconds = time.perf_counter() - compile_start

    eager = [run for run in runs if "compile=true" not in run.name]
    results = step.figures(eager, batches, timings, args.warmup, args.batch_size, args.precision)
    for run in runs:
        if run in eager:
            continue
        twin = results[run.name.replace(",compile=true", "").replace(":compile=true", "")]
        peak = peak_bytes(run, batches[run.name], 0, args.precision, twin.peak_bytes)
        results[run.name] = step.StepFigures(
            timings.wall[run.name], timings.cpu[run.name], twin.flops, peak, args.batch_size
        )
    syncs = {
        run.name: host_syncs(run, batches[run.name], args.warmup + args.steps, args.precision)
        for run in runs
    }
    peak = flops.matmul_flops(args.matmul_size) / median(timings.wall["matmul"])

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, torch {torch.__version__}: {args.recipe} recipes, {step.vit_label(runs[0])}, "
        f"batch {args.batch_size}, precision {args.precision}; median of "
        f"{args.steps} steps after {args.warmup} warm-up, interleaved ({seconds:.0f} s in all)"
    )
    reference = next((s for s in args.methods if s.startswith("vicreg")), "vicreg")
    print(f"{dtype} matmul peak ({args.matmul_size}^2, same rounds): {peak / 1e12:.1f} TFLOP/s")
    width = max(map(len, results)) + 2
    print(
        f"{'method':<{width}}{'img/s':>8}{'x vicreg':>10}{'TFLOP/s':>9}{'of peak':>9}"
        f"{'peak GiB':>10}{'syncs':>7}"
    )
    ref = results.get(reference)
    for run_name, fig in results.items():
        ratio = f"{fig.images_per_s / ref.images_per_s:>10.2f}" if ref else f"{'-':>10}"
        print(
            f"{run_name:<{width}}{fig.images_per_s:>8.1f}{ratio}"
            f"{fig.flops_per_s() / 1e12:>9.1f}{fig.flops_per_s() / peak:>9.0%}"
            f"{fig.peak_bytes / 2**30:>10.1f}{syncs[run_name]:>7}"
        )
    if args.dali_images:
        with contextlib.redirect_stdout(None):
            rate = dali_images_per_s(
                device, args.batch_size, args.dali_batches, args.dali_images, args.dali_threads
            )
        print(f"\nDALI pipeline (imagenet-100/cjepa-dali.yaml, {device.type}): {rate:.0f} img/s")


if __name__ == "__main__":
    main()
