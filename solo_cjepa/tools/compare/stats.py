"""Statistics over seeds: mean, standard deviation and Student-t 95 % confidence interval of a
metric, and of the paired difference of two entries run with the same seeds.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from scipy import stats


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: Optional[float]  # sample std (n - 1); None for a single value
    half_width: Optional[float]  # of the confidence interval; None for a single value

    @property
    def low(self) -> Optional[float]:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> Optional[float]:
        return None if self.half_width is None else self.mean + self.half_width

    def excludes_zero(self) -> Optional[bool]:
        return None if self.half_width is None else self.low > 0 or self.high < 0


def summarise(values: Sequence[float], confidence: float = 0.95) -> Optional[Summary]:
    """Mean, std and the ``confidence`` interval ``mean ± t(n-1) · std / sqrt(n)`` of ``values``
    (seeds drawn independently); None for no values."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n == 1:
        return Summary(1, mean, None, None)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return Summary(n, mean, std, t * std / math.sqrt(n))


def paired_difference(
    a: Dict[int, float], b: Dict[int, float], confidence: float = 0.95
) -> Optional[Summary]:
    """:func:`summarise` of ``a[seed] - b[seed]`` over the seeds both have: pairing by seed takes
    out what the two runs of a seed share (data order, masks' random stream, the initial ViT)."""
    return summarise([a[seed] - b[seed] for seed in sorted(a.keys() & b.keys())], confidence)
