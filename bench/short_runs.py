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
from solo_cjepa.monitors import relative_distance
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
    "old, lr x2": ("cjepa", [*OFF, "optimizer.lr=2e-3"]),
    "old, no wd ramp": ("cjepa", [*OFF, "method_kwargs.final_weight_decay=null"]),
    "ijepa old": ("ijepa", OFF),
    "ijepa both (default)": ("ijepa", []),
    "ijepa memory 0.05": ("ijepa", ["++scheduler.warmup_max_share=null"]),
    "ijepa both, memory 0.1": ("ijepa", ["++momentum.memory_max_share=0.1"]),
    "ijepa both, memory 0.2": ("ijepa", ["++momentum.memory_max_share=0.2"]),
}
# Validation split of the training images: fit on 30 000, score on 10 000 (stratified, fixed).
FIT, HOLDOUT, SPLIT_SEED = 30_000, 10_000, 0


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


def diagnose(run_dir: Path) -> Dict[str, float]:
    model, cfg = load_method(run_dir)
    torch.manual_seed(cfg.seed)
    initial = type(model)(cfg).momentum_backbone.state_dict()
    target, context = model.momentum_backbone.state_dict(), model.backbone.state_dict()
    row = {
        "target_from_init": relative_distance(target.values(), initial.values()),
        "target_from_context": relative_distance(target.values(), context.values()),
    }
    train_loader, _ = eval_loaders(cfg)  # the test set is not read
    for encoder, module in (("target", model.momentum_backbone), ("context", model.backbone)):
        x, y = extract_features(module.eval(), train_loader)
        fit, held = train_test_split(
            torch.arange(len(y)).numpy(),
            train_size=FIT,
            test_size=HOLDOUT,
            stratify=y.numpy(),
            random_state=SPLIT_SEED,
        )
        scores = evaluate_features((x[fit], y[fit]), (x[held], y[held]))
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
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args, extra = p.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    results = args.out / "results.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        config, overrides = VARIANTS[name]
        run = train(name, config, [*overrides, *extra], args.seed, args.budget, args.out)
        row = {"variant": name, "seed": args.seed, "budget": args.budget, **diagnose(run)}
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
