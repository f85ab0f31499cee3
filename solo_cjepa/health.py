"""Run health, decided from tensors and numbers: a device-side record of the first step whose loss
terms went non-finite (updated without a host synchronisation, read where the run synchronises
anyway), and the streak of logged steps an encoder's effective rank stays under a threshold.
"""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

COLLAPSE_MODES = ("off", "warn", "stop")
# An encoder whose pooled features keep fewer than 3 effective dimensions has collapsed: in the
# Fashion-MNIST study (vit_micro, 128 dimensions) the untrained encoder starts at ~5, the healthy
# runs' training ranks stay above 4 (8-24 by the end), and the collapsed ones fall to 1.5-2.7.
# Five logged steps in a row (250 steps at Lightning's default log_every_n_steps=50) keep a dip
# at the start of training from counting.
COLLAPSE_DEFAULTS = {"collapse": "warn", "collapse_rank": 3.0, "collapse_steps": 5}
NO_STEP = -1


def new_record(num_terms: int, device: torch.device) -> torch.Tensor:
    """An empty record for ``num_terms`` loss terms: ``[step, flag per term]``, step -1."""
    return torch.full((1 + num_terms,), NO_STEP, dtype=torch.long, device=device)


def record_non_finite(
    record: torch.Tensor, step: int, terms: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``record`` with ``step`` and which ``terms`` are non-finite, if any is and none was
    before; else ``record`` unchanged. No host synchronisation (``step`` goes in as a scalar)."""
    flags = torch.stack([~torch.isfinite(term.detach()).all() for term in terms])
    first = (record[0] == NO_STEP) & flags.any()
    entry = torch.cat([torch.full_like(record[:1], step), flags.long()])
    return torch.where(first, entry, record)


def first_non_finite(
    records: Sequence[Sequence[int]], names: Sequence[str]
) -> Optional[Tuple[int, List[str]]]:
    """The earliest step any of ``records`` (one per process, as :func:`record_non_finite`
    writes them) holds and the ``names`` of the terms non-finite at that step on any process;
    ``None`` while all are finite."""
    steps = [record[0] for record in records if record[0] != NO_STEP]
    if not steps:
        return None
    step = min(steps)
    at_step = [record[1:] for record in records if record[0] == step]
    return step, [name for i, name in enumerate(names) if any(flags[i] for flags in at_step)]


class CollapseStreak:
    """Counts, per encoder, the consecutive logged steps its effective rank stays below
    ``rank_threshold``; reports the encoders that first reach ``steps`` such steps, once."""

    def __init__(self, rank_threshold: float, steps: int):
        self.rank_threshold = rank_threshold
        self.steps = steps
        self.streaks: Dict[str, int] = {}
        self.reported = False

    def update(self, ranks: Mapping[str, float]) -> List[str]:
        """Adds one logged step's ``ranks`` (encoder name: effective rank); returns the encoders
        that have now stayed below the threshold for ``steps`` logged steps, the first time any
        has (later: ``[]``)."""
        for encoder, rank in ranks.items():
            low = rank < self.rank_threshold  # a NaN rank is the non-finite check's to report
            self.streaks[encoder] = self.streaks.get(encoder, 0) + 1 if low else 0
        if self.reported:
            return []
        collapsed = [encoder for encoder, n in self.streaks.items() if n >= self.steps]
        self.reported = bool(collapsed)
        return collapsed
