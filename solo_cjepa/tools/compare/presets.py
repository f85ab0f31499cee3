"""Named comparisons: ``--preset mini`` (all four methods on Fashion-MNIST within an hour on two CPU
cores) and ``--ablation vicreg`` (C-JEPA's VICReg terms switched off and on, the paper's Table 3).
"""

import re
from dataclasses import dataclass, replace
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


# Entries of an ablation that are runs of a shipped config: asked for with the ablation, that
# method is not run twice (ijepa.yaml is cjepa.yaml with vicreg_weight 0).
ABLATION_RUNS_OF: Dict[str, Dict[str, str]] = {
    "vicreg": {"cjepa": "var/cov + invariance (C-JEPA)", "ijepa": "neither (I-JEPA)"}
}
# Entry pairs (a, b) whose paired difference a - b the report gives when both are in: C-JEPA
# against I-JEPA, the paper's Table-3 ordering (both terms > var/cov only, invariance only >
# neither) and C-JEPA against the two-view methods, under either name of C-JEPA and I-JEPA.
_BOTH, _NEITHER = "var/cov + invariance (C-JEPA)", "neither (I-JEPA)"
PAIRED_DIFFERENCES = (
    (_BOTH, _NEITHER),
    ("cjepa", "ijepa"),
    (_BOTH, "var/cov only"),
    ("invariance only", _NEITHER),
    *((cjepa, other) for cjepa in (_BOTH, "cjepa") for other in ("vicreg", "byol")),
)


def method_specs(methods: Sequence[str], ablation: Optional[str] = None) -> Tuple[RunSpec, ...]:
    """The ablation's entries (if any), then the methods it does not already run."""
    covered = ABLATION_RUNS_OF.get(ablation, {})
    extra = tuple(RunSpec(m, m) for m in methods if m not in covered)
    return (ABLATIONS[ablation] if ablation else ()) + extra


def with_seeds(specs: Sequence[RunSpec], seeds: Optional[Sequence[int]]) -> Tuple[RunSpec, ...]:
    """Every entry once per seed, seed by seed (a cut-short study has whole seeds); no seeds: once
    with the config's seed."""
    if not seeds:
        return tuple(specs)
    return tuple(replace(spec, seed=seed) for seed in seeds for spec in specs)


def folder_name(spec: RunSpec) -> str:
    """A run's folder under the output directory, from its label (and its seed)."""
    entry = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")
    return entry if spec.seed is None else f"{entry}/seed-{spec.seed}"
