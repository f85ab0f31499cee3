"""What ``performance.compile`` does to a C-JEPA step: compile time, recompilations over a run of
steps, graph breaks (``torch._dynamo.explain``) and steady images/s against the eager step and
VICReg, interleaved. Run ``python3 -m bench.compile`` (``--help`` for the settings).
"""

import argparse
import time
from statistics import median
from typing import Optional, Sequence

import torch
import torch._dynamo
from torch._dynamo.utils import counters

from bench import step
from bench.gpu import compiled
from bench.methods import Run, train_step


def graph_breaks(run: Run, batch_size: int, device: torch.device) -> dict:
    """Graphs and breaks per compiled module, traced on the shapes of a real step."""
    model = run.model
    context_idx, target_idx = model.mask_generator(batch_size, 0, device)
    width = model.features_dim
    context = torch.randn(batch_size, context_idx.shape[1], width, device=device)
    inputs = {
        "context encoder blocks": (model.backbone.blocks, (context,)),
        "target encoder blocks": (
            model.momentum_backbone.blocks,
            (torch.randn(batch_size, model.mask_generator.num_patches, width, device=device),),
        ),
        "predictor": (model.predictor, (context, context_idx, target_idx)),
    }
    return {name: torch._dynamo.explain(module)(*args) for name, (module, args) in inputs.items()}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.compile", description=__doc__)
    step.add_arguments(parser)
    parser.set_defaults(methods=["cjepa:pred_layout=single"], steps=5)
    parser.add_argument("--run-steps", type=int, default=50, help="steps counting recompilations")
    parser.add_argument("--reference", default="vicreg", help="spec timed alongside ('' for none)")
    args = parser.parse_args(argv)
    device = step.setup(args)
    (spec,) = args.methods
    specs = [spec, compiled(spec)] + ([args.reference] if args.reference else [])
    runs, batches = step.build_runs(specs, args.batch_size, device, args)
    eager, fast = runs[0], runs[1]

    breaks = graph_breaks(eager, args.batch_size, device)
    torch._dynamo.reset()
    traced = counters["stats"]["unique_graphs"]  # explain's graphs count there too
    start = time.perf_counter()
    train_step(fast, batches[fast.name], 0, args.precision)
    first = time.perf_counter() - start
    graphs = counters["stats"]["unique_graphs"] - traced
    start = time.perf_counter()
    for i in range(1, args.run_steps):
        train_step(fast, batches[fast.name], i, args.precision)
    rest = time.perf_counter() - start
    recompiled = counters["stats"]["unique_graphs"] - traced - graphs

    tasks = step.step_tasks(runs, batches, args.precision)
    timings = step.interleave(tasks, args.steps, args.warmup, device)
    rates = {run.name: args.batch_size / median(timings.wall[run.name]) for run in runs}

    print(
        f"{spec}, {step.vit_label(eager)}, batch {args.batch_size}, precision {args.precision}, "
        f"{torch.get_num_threads()} threads, {device}"
    )
    print(
        f"first compiled step {first:.0f} s ({graphs} graphs); {args.run_steps - 1} more steps "
        f"{rest:.0f} s with {recompiled} graphs recompiled"
    )
    for name, explained in breaks.items():
        reasons = "; ".join(sorted({str(r.reason) for r in explained.break_reasons}))
        print(
            f"  {name}: {explained.graph_count} graph(s), {explained.graph_break_count} "
            f"graph break(s){': ' + reasons if reasons else ''}"
        )
    print(f"median of {args.steps} steps after {args.warmup} warm-up, interleaved:")
    for name, rate in rates.items():
        line = f"  {name:<40}{rate:>8.1f} img/s"
        line += f"{rate / rates[args.reference]:>7.2f} x {args.reference}" if args.reference else ""
        print(line + f"{rate / rates[eager.name]:>7.2f} x eager")


if __name__ == "__main__":
    main()
