"""Named comparisons: ``--preset mini`` (all four methods on Fashion-MNIST within an hour on two CPU
cores) and ``--ablation vicreg`` (C-JEPA's VICReg terms switched off and on, the paper's Table 3).
"""

import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from solo_cjepa.tools.compare.configs import METHODS
from solo_cjepa.tools.compare.runner import RunSpec


@dataclass(frozen=True)
class Preset:
    """Defaults for the flags; explicit flags win. ``overrides`` come before the user's."""

    dataset: str
    methods: Tuple[str, ...]
    epochs: Optional[int] = None
    minutes: Optional[float] = None
    total_minutes: Optional[float] = None
    overrides: Tuple[str, ...] = ()


PRESETS: Dict[str, Preset] = {
    "mini": Preset(
        dataset="fashion-mnist",
        methods=METHODS,
        epochs=4,
        total_minutes=60.0,
        overrides=(),
    ),
}

# The paper's Table 3 rows, in its order: which of C-JEPA's VICReg terms are on.
ABLATIONS: Dict[str, Tuple[RunSpec, ...]] = {
    "vicreg": (
        RunSpec("neither (I-JEPA)", "cjepa", ("++method_kwargs.vicreg_weight=0",)),
        RunSpec("var/cov only", "cjepa", ("++method_kwargs.sim_loss_weight=0",)),
        RunSpec(
            "invariance only",
            "cjepa",
            ("++method_kwargs.var_loss_weight=0", "++method_kwargs.cov_loss_weight=0"),
        ),
        RunSpec("var/cov + invariance (C-JEPA)", "cjepa"),
    ),
}


def method_specs(methods: Sequence[str]) -> Tuple[RunSpec, ...]:
    return tuple(RunSpec(method, method) for method in methods)


def folder_name(spec: RunSpec) -> str:
    """A run's folder under the output directory, from its label."""
    return re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")
