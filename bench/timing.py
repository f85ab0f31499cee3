"""Interleaved timing: every task runs once per round, in a rotating order.

On a shared machine the load drifts over a run; interleaving lets every task see the same drift,
so ratios between tasks stay meaningful even when absolute times do not. Process CPU time is
recorded next to wall time: on a CPU it counts the work done rather than the waiting for cores.
"""

import time
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch

from bench.methods import synchronize


@dataclass
class Timings:
    """Seconds of each task's measured runs: wall clock and process CPU time (all threads)."""

    wall: Dict[str, List[float]]
    cpu: Dict[str, List[float]]


def interleave(
    tasks: Dict[str, Callable[[int], object]], rounds: int, warmup: int, device: torch.device
) -> Timings:
    """Runs ``task(round_index)`` for every task over ``warmup + rounds`` rounds and keeps the
    last ``rounds`` runs of each (device-synchronised)."""
    names = list(tasks)
    timings = Timings({name: [] for name in names}, {name: [] for name in names})
    for i in range(warmup + rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            wall, cpu = time.perf_counter(), time.process_time()
            tasks[name](i)
            synchronize(device)
            if i >= warmup:
                timings.wall[name].append(time.perf_counter() - wall)
                timings.cpu[name].append(time.process_time() - cpu)
    return timings
