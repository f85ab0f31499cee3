"""Why a short run's EMA target encoder stays at its initial weights, one factor at a time: trains
the Fashion-MNIST recipe at a small budget once per variant and prints, for both encoders, the
frozen-feature scores on a validation split carved from the training images (never the test set),
the target's distance from its initial weights and from the context encoder, and its rank.

    python3 -m bench.short_runs --out /tmp/short_runs [--seed 0] [--variants old ...] [-- overrides]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from sklearn.model_selection import train_test_split

from solo_cjepa.launch.checkpoints.loading import load_method
from solo_cjepa.launch.run import untrained_encoder
from solo_cjepa.monitors import relative_distance
from solo_cjepa.tools.compare.configs import compose_run
from solo_cjepa.tools.offline_eval import eval_loaders, evaluate_features, extract_features

REPO = Path(__file__).resolve().parents[1]
# The old study's budget: 2 epochs of 25 % of Fashion-MNIST (234 steps of 128 images).
BUDGET = ("0.25", "2")
OFF = ["++scheduler.warmup_max_share=null", "++momentum.memory_max_share=null"]
VARIANTS: Dict[str, Tuple[str, List[str]]] = {  # name: (yaml, overrides)
    "old": ("cjepa", OFF),  # the recipe before run-scaled schedules
    "warmup 0.1": ("cjepa", ["++momentum.memory_max_share=null"]),
    "memory 0.05": ("cjepa", ["++scheduler.warmup_max_share=null"]),
    "both (default)": ("cjepa", []),
    "both, memory 0.02": ("cjepa", ["++momentum.memory_max_share=0.02"]),
    "both, memory 0.1": ("cjepa", ["++momentum.memory_max_share=0.1"]),
    "both, memory 0.2": ("cjepa", ["++momentum.memory_max_share=0.2"]),
    "both, memory 0.5": ("cjepa", ["++momentum.memory_max_share=0.5"]),
    "old, lr x2": ("cjepa", [*OFF, "optimizer.lr=2e-3"]),
    "old, no wd ramp": ("cjepa", [*OFF, "method_kwargs.final_weight_decay=null"]),
    "ijepa old": ("ijepa", OFF),
    "ijepa both (default)": ("ijepa", []),
    "ijepa memory 0.05": ("ijepa", ["++scheduler.warmup_max_share=null"]),
    "ijepa both, memory 0.1": ("ijepa", ["++momentum.memory_max_share=0.1"]),
    "ijepa both, memory 0.2": ("ijepa", ["++momentum.memory_max_share=0.2"]),
    "ijepa both, memory 0.5": ("ijepa", ["++momentum.memory_max_share=0.5"]),
}
# Validation split of the training images, stratified and fixed: of Fashion-MNIST's 60 000, fit on
# 30 000 and score on 10 000.
FIT, HOLDOUT, SPLIT_SEED = 1 / 2, 1 / 6, 0


def train(
    name: str, config: str, overrides: List[str], seed: int, budget: List[str], out: Path
) -> Path:
    fraction, epochs = budget
    folder = out / "".join(c if c.isalnum() else "_" for c in f"{name} {epochs}x{fraction} {seed}")
    command = [
        sys.executable,
        str(REPO / "main_pretrain.py"),
        "--config-name",
        f"{config}.yaml",
        f"data.fraction={fraction}",
        f"max_epochs={epochs}",
        f"++seed={seed}",
        *overrides,
        f"checkpoint.dir={folder}",
        "++enable_progress_bar=False",
    ]
    subprocess.run(command, check=True)
    return next((folder / "cjepa").iterdir())


def validation_scores(encoder, cfg) -> Dict[str, float]:
    """The offline scores of ``encoder`` on the validation split of ``cfg``'s training images."""
    train_loader, _ = eval_loaders(cfg)  # the test set is not read
    x, y = extract_features(encoder.eval(), train_loader)
    fit, held = train_test_split(
        torch.arange(len(y)).numpy(),
        train_size=FIT,
        test_size=HOLDOUT,
        stratify=y.numpy(),
        random_state=SPLIT_SEED,
    )
    return evaluate_features((x[fit], y[fit]), (x[held], y[held]))


def diagnose(run_dir: Path) -> Dict[str, float]:
    model, cfg = load_method(run_dir)
    initial = untrained_encoder(cfg).state_dict()
    target, context = model.momentum_backbone.state_dict(), model.backbone.state_dict()
    row = {
        "target_from_init": relative_distance(target.values(), initial.values()),
        "target_from_context": relative_distance(target.values(), context.values()),
    }
    for encoder, module in (("target", model.momentum_backbone), ("context", model.backbone)):
        scores = validation_scores(module, cfg)
        row.update({f"{encoder}_{k}": v for k, v in scores.items()})
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--budget",
        nargs=2,
        default=BUDGET,
        metavar=("FRACTION", "EPOCHS"),
        help="data.fraction and max_epochs of every run (default: the old study's, %(default)s)",
    )
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument(
        "--untrained",
        action="store_true",
        help="first score the seed's untrained ViT (where every variant starts) on the same split",
    )
    args, extra = p.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    args.out.mkdir(parents=True, exist_ok=True)

    def record(row: Dict) -> None:
        with open(args.out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    if args.untrained:  # both encoders start as this ViT
        cfg = compose_run("fashion-mnist", "cjepa", [f"++seed={args.seed}", *extra])
        scores = validation_scores(untrained_encoder(cfg), cfg)
        encoders = {f"{e}_{k}": v for e in ("target", "context") for k, v in scores.items()}
        record({"variant": "untrained ViT", "seed": args.seed, **encoders})
    for name in args.variants:
        config, overrides = VARIANTS[name]
        run = train(name, config, [*overrides, *extra], args.seed, args.budget, args.out)
        record({"variant": name, "seed": args.seed, "budget": args.budget, **diagnose(run)})


if __name__ == "__main__":
    main()
