"""Command line of the comparison: ``python -m solo_cjepa.compare [flags] [-- hydra overrides]``.
Flags pick the runs, their seeds, their common budget, the launcher and the output folder; a preset
fills the flags left out. ``python -m solo_cjepa.compare report DIR`` rebuilds DIR's report;
``python -m solo_cjepa.compare rescore DIR`` re-runs its offline evaluation from the checkpoints.
"""

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from solo_cjepa.errors import ConfigError, exit_on_config_error, require
from solo_cjepa.tools.compare.collect import rebuild
from solo_cjepa.tools.compare.configs import METHODS
from solo_cjepa.tools.compare.finetuning import CONFIG_NAME, FineTuning, linear_config_dir
from solo_cjepa.tools.compare.launchers import LAUNCHERS, Launcher
from solo_cjepa.tools.compare.pipeline import Plan, run_comparison
from solo_cjepa.tools.compare.presets import ABLATIONS, PRESETS, method_specs
from solo_cjepa.tools.compare.records import load_plan
from solo_cjepa.tools.compare.rescore import rescore

DEFAULT_DATASET = "fashion-mnist"

EXAMPLES = """\
examples:
  python -m solo_cjepa.compare --preset mini --out report/
  python -m solo_cjepa.compare --methods cjepa byol --epochs 2 --out runs/ -- ++data.fraction=0.1
  python -m solo_cjepa.compare --ablation vicreg --minutes 5 --out ablation/
  python -m solo_cjepa.compare --ablation vicreg --methods vicreg byol --seeds 0 1 2 --epochs 2
  python -m solo_cjepa.compare --seeds 0 1 2 --launcher slurm --partition gpu --gpus 4 \\
      --dataset imagenet100 --out runs/ && python -m solo_cjepa.compare report runs/
  python -m solo_cjepa.compare --methods cjepa ijepa --epochs 2 --finetune --finetune-epochs 1
  python -m solo_cjepa.compare rescore study/ [--finetune]
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m solo_cjepa.compare",
        description="Train C-JEPA, I-JEPA, VICReg and BYOL under the same budget (one after "
        "another, or through a Hydra launcher) and write DIR/report.md, DIR/report.csv and PNG "
        "plots. Hydra overrides for every run go after '--'. Re-running into the same DIR "
        "replaces its runs; 'python -m solo_cjepa.compare report DIR' rebuilds the report from "
        "the runs that have finished.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dataset", help=f"config folder scripts/pretrain/<dataset> (default {DEFAULT_DATASET})"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        help="shipped configs to run (default: all; with --ablation: none, and cjepa/ijepa are "
        "the ablation's both/neither entries)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        help="run every entry once per seed (seed=S) and report mean, std and 95%% intervals "
        "(default: once, with the configs' seed)",
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
    _finetuning_flags(p)
    launch = p.add_argument_group("launcher (Hydra's launcher plugins)")
    launch.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: one run after another (default); joblib: --jobs runs at once on this machine "
        "(hydra-joblib-launcher); slurm: one job per run (hydra-submitit-launcher)",
    )
    launch.add_argument("--jobs", type=int, help="joblib: runs at once (default: all cores)")
    launch.add_argument("--partition", help="slurm: partition")
    launch.add_argument(
        "--gpus", type=int, default=0, help="slurm: GPUs per node of each run (DDP, one task each)"
    )
    launch.add_argument("--nodes", type=int, default=1, help="slurm: nodes per run")
    launch.add_argument("--time-limit", type=int, help="slurm: minutes per job")
    launch.add_argument(
        "--launcher-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further hydra.launcher settings, e.g. account=lab or qos=high (repeatable)",
    )
    return p


def _finetuning_flags(p: argparse.ArgumentParser) -> None:
    tune = p.add_argument_group("fine-tuning (after each run's pretraining and evaluation)")
    tune.add_argument(
        "--finetune",
        action="store_true",
        help="fine-tune each run's evaluated encoder (target for C-JEPA/I-JEPA, else context) "
        "with a linear classifier on the run's data: scripts/linear/<dataset>/finetune.yaml "
        "through solo's LinearModel; its top-1 is reported next to the frozen-feature numbers. "
        "Its time comes on top of --minutes/--total-minutes",
    )
    tune.add_argument(
        "--finetune-epochs",
        type=int,
        help="max_epochs of every fine-tuning (default: finetune.yaml's)",
    )
    tune.add_argument(
        "--finetune-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hydra override of finetune.yaml for every fine-tuning, e.g. "
        "++data.fraction=0.25 or optimizer.lr=1e-3 (repeatable)",
    )


def rescore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m solo_cjepa.compare rescore",
        description="Run the offline evaluation (logistic regression on all labels and on few, "
        "kNN, effective rank) of every finished run in DIR again from its checkpoint, and the "
        "floors again; rewrite the runs' records and rebuild the report. Runs whose checkpoint "
        "was not kept keep their records. With --finetune, also fine-tune each run.",
    )
    p.add_argument("dir", type=Path, help="the --out folder of a comparison")
    _finetuning_flags(p)
    return p


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m solo_cjepa.compare report",
        description="Rebuild DIR/report.md, DIR/report.csv and the plots from the runs in DIR "
        "that have finished; missing or failed runs are marked rows.",
    )
    p.add_argument("dir", type=Path, help="the --out folder of a comparison")
    return p


def split_overrides(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Flags before ``--``, Hydra overrides after it."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def finetuning_of(args: argparse.Namespace, dataset: str) -> Optional[FineTuning]:
    """The fine-tuning of ``--finetune`` and its settings, None without it."""
    if not args.finetune:
        require(
            args.finetune_epochs is None and not args.finetune_override,
            "--finetune-epochs and --finetune-override are for --finetune",
        )
        return None
    require(
        args.finetune_epochs is None or args.finetune_epochs > 0,
        f"--finetune-epochs must be > 0, got {args.finetune_epochs}",
    )
    folder = linear_config_dir(dataset)
    require(
        (folder / CONFIG_NAME).is_file(),
        f"--finetune needs {folder / CONFIG_NAME}, the fine-tuning config of --dataset",
    )
    return FineTuning(str(folder), args.finetune_epochs, tuple(args.finetune_override))


def build_plan(argv: Sequence[str]) -> Plan:
    flags, user_overrides = split_overrides(argv)
    args = parser().parse_args(flags)
    preset = PRESETS[args.preset] if args.preset else None
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise ConfigError(f"--seeds must differ from each other, got {args.seeds}")
    if args.launcher != "joblib" and args.jobs is not None:
        raise ConfigError("--jobs is for --launcher joblib")
    slurm_only = ("partition", "time_limit", "launcher_override")
    if args.launcher != "slurm" and (
        any(getattr(args, k) for k in slurm_only) or args.gpus or args.nodes != 1
    ):
        raise ConfigError(
            "--partition, --gpus, --nodes, --time-limit and --launcher-override are for "
            "--launcher slurm"
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
        specs = method_specs(args.methods or (), args.ablation)
        title = "C-JEPA ablation of the VICReg terms (paper Table 3)"
        title += " and methods" if len(specs) > len(ABLATIONS[args.ablation]) else ""
    else:
        specs = method_specs(pick("methods", METHODS))
        title = "Side-by-side comparison"
    dataset = pick("dataset", DEFAULT_DATASET)
    finetuning = finetuning_of(args, dataset)
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
        seeds=args.seeds,
        finetuning=finetuning,
        launcher=Launcher(
            args.launcher,
            n_jobs=args.jobs,
            partition=args.partition,
            gpus=args.gpus,
            nodes=args.nodes,
            time_limit_min=args.time_limit,
            extra=tuple(args.launcher_override),
        ),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with exit_on_config_error():
            if argv[:1] == ["rescore"]:
                args = rescore_parser().parse_args(argv[1:])
                dataset = load_plan(args.dir)["settings"]["dataset"]
                report = rescore(args.dir, finetuning_of(args, dataset))
            elif argv[:1] == ["report"]:
                out = report_parser().parse_args(argv[1:]).dir
                report = rebuild(out)
                print(f"[report] {out / 'report.md'}")
            else:
                report = run_comparison(build_plan(argv))
    except KeyboardInterrupt:
        print("interrupted: the report holds the runs finished so far", file=sys.stderr)
        return 130
    return 0 if all(row["status"] in ("ok", "floor") for row in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
