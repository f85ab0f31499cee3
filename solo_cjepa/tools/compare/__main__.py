"""Command line of the comparison: ``python -m solo_cjepa.compare [flags] [-- hydra overrides]``.
Flags pick the runs, their common budget and the output folder; a preset fills the flags left out.
"""

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from solo_cjepa.errors import ConfigError, exit_on_config_error
from solo_cjepa.tools.compare.configs import METHODS
from solo_cjepa.tools.compare.pipeline import Plan, run_comparison
from solo_cjepa.tools.compare.presets import ABLATIONS, PRESETS, method_specs

DEFAULT_DATASET = "fashion-mnist"

EXAMPLES = """\
examples:
  python -m solo_cjepa.compare --preset mini --out report/
  python -m solo_cjepa.compare --methods cjepa byol --epochs 2 --out runs/ -- ++data.fraction=0.1
  python -m solo_cjepa.compare --ablation vicreg --minutes 5 --out ablation/
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m solo_cjepa.compare",
        description="Train C-JEPA, I-JEPA, VICReg and BYOL one after another under the same budget "
        "and write DIR/report.md, DIR/report.csv and PNG plots. Hydra overrides for every run go "
        "after '--'. Re-running into the same DIR replaces its runs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dataset", help=f"config folder scripts/pretrain/<dataset> (default {DEFAULT_DATASET})"
    )
    p.add_argument(
        "--methods", nargs="+", choices=METHODS, help="shipped configs to run (default: all)"
    )
    p.add_argument("--epochs", type=int, help="max_epochs of every run")
    p.add_argument("--minutes", type=float, help="training time of every run (Lightning max_time)")
    p.add_argument(
        "--total-minutes",
        type=float,
        help="whole comparison, evaluation included: sets --minutes from the measured cost of an "
        "offline evaluation",
    )
    p.add_argument(
        "--out", type=Path, default=Path("report"), help="output folder (default report/)"
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="mini: all four methods on Fashion-MNIST in an hour on 2 CPU cores",
    )
    p.add_argument(
        "--ablation",
        choices=sorted(ABLATIONS),
        help="vicreg: C-JEPA without/with its VICReg terms (paper Table 3)",
    )
    return p


def split_overrides(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Flags before ``--``, Hydra overrides after it."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def build_plan(argv: Sequence[str]) -> Plan:
    flags, user_overrides = split_overrides(argv)
    args = parser().parse_args(flags)
    preset = PRESETS[args.preset] if args.preset else None
    if args.ablation and args.methods:
        raise ConfigError(
            f"--ablation {args.ablation} runs its own C-JEPA variants: drop --methods"
        )
    for flag, value in (
        ("--epochs", args.epochs),
        ("--minutes", args.minutes),
        ("--total-minutes", args.total_minutes),
    ):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be > 0, got {value:g}")
    if args.minutes is not None and args.total_minutes is not None:
        raise ConfigError(
            "give --minutes (per run) or --total-minutes (whole comparison), not both"
        )

    def pick(name: str, default=None):
        explicit = getattr(args, name)
        if explicit is not None:
            return explicit
        return getattr(preset, name) if preset else default

    minutes, total = args.minutes, args.total_minutes
    if minutes is None and total is None and preset:
        minutes, total = preset.minutes, preset.total_minutes
    if args.ablation:
        specs = ABLATIONS[args.ablation]
        title = "C-JEPA ablation of the VICReg terms (paper Table 3)"
    else:
        specs = method_specs(pick("methods", METHODS))
        title = "Side-by-side comparison"
    dataset = pick("dataset", DEFAULT_DATASET)
    return Plan(
        dataset=dataset,
        specs=specs,
        out=args.out,
        epochs=pick("epochs"),
        minutes=minutes,
        total_minutes=total,
        overrides=[*(preset.overrides if preset else ()), *user_overrides],
        title=f"{title} on {dataset}",
        command=shlex.join(["python", "-m", "solo_cjepa.compare", *argv]),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        with exit_on_config_error():
            report = run_comparison(build_plan(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("interrupted: the report holds the runs finished so far", file=sys.stderr)
        return 130
    return 0 if all(row["status"] in ("ok", "floor") for row in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
