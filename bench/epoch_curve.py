"""A run's offline evaluation epoch by epoch: every checkpoint it kept (with
``checkpoint.keep_prev=True``) scored as the comparison scores a run (logistic regression, kNN,
effective rank), its untrained ViT as epoch 0 (the run's seed) and the raw-pixel floor; one line
per point, and with ``--out`` the points as ``curve.json`` and the logreg curves as ``curve.png``.

    python3 -m bench.epoch_curve RUN [RUN ...] [--labels ...] [--encoders target context]
        [--every K] [--out DIR]
"""

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from bench.__main__ import cpu_name  # noqa: E402
from solo_cjepa.launch.checkpoints.loading import encoder_of, load_method, run_cfg  # noqa: E402
from solo_cjepa.launch.data.holdout import scored_split  # noqa: E402
from solo_cjepa.launch.run import untrained_encoder  # noqa: E402
from solo_cjepa.tools.offline_eval import eval_loaders, evaluate, flat_pixels  # noqa: E402

EPOCH_OF_CHECKPOINT = re.compile(r"-ep=(\d+)\.ckpt$")  # solo's Checkpointer: ep = epochs done - 1


def epoch_checkpoints(run: Path) -> List[Tuple[int, Path]]:
    """``(epochs done, checkpoint)`` of every epoch checkpoint in a run folder, oldest first."""
    found = [(EPOCH_OF_CHECKPOINT.search(p.name), p) for p in Path(run).glob("*.ckpt")]
    return sorted((int(m.group(1)) + 1, p) for m, p in found if m)


def _point(label: str, encoder: str, epoch: int, scores: Dict, seconds: float) -> Dict:
    point = {"run": label, "encoder": encoder, "epoch": epoch, "eval_s": round(seconds, 1)}
    point.update({k: v for k, v in scores.items() if v is not None})
    print(
        f"{label:<28} {encoder:<8} epoch {epoch:>3}: logreg {scores['offline_logreg_top1']:5.1f}"
        f"  kNN {scores['offline_knn_top1']:5.1f}  rank {scores['feature_rank']:6.1f}"
        f"  ({seconds:.0f} s)",
        flush=True,
    )
    return point


def _scored(features, loaders) -> Tuple[Dict, float]:
    start = time.monotonic()
    return evaluate(features, loaders, low_shot=None), time.monotonic() - start


def run_curve(run: Path, label: str, encoders: Sequence[str], every: int) -> List[Dict]:
    """The points of one run: epoch 0 (its untrained ViT, the floor of both encoders) and every
    ``every``-th epoch checkpoint with the first and the last, for each of ``encoders``."""
    cfg = run_cfg(run)
    loaders = eval_loaders(cfg)
    points = [_point(label, "init", 0, *_scored(untrained_encoder(cfg), loaders))]
    checkpoints = epoch_checkpoints(run)
    for i, (epoch, path) in enumerate(checkpoints):
        if epoch % every and 0 < i < len(checkpoints) - 1:
            continue
        model, _ = load_method(path)
        for encoder in encoders:
            scores, seconds = _scored(encoder_of(model, encoder), loaders)
            points.append(_point(label, encoder, epoch, scores, seconds))
    return points


def plot(points: Sequence[Dict], pixels: Optional[float], path: Path) -> Path:
    """Logreg top-1 against epoch: a colour per run, its target solid and its context dashed,
    both starting from its untrained ViT; raw pixels as a dotted line."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for colour, label in enumerate(dict.fromkeys(p["run"] for p in points)):
        init = [p for p in points if p["run"] == label and p["encoder"] == "init"]
        for encoder, style in (("target", "-"), ("context", "--")):
            curve = init + [p for p in points if p["run"] == label and p["encoder"] == encoder]
            if len(curve) > len(init):
                ax.plot(
                    [p["epoch"] for p in curve],
                    [p["offline_logreg_top1"] for p in curve],
                    style,
                    color=f"C{colour}",
                    marker="o" if encoder == "target" else "s",
                    label=f"{label}, {encoder}",
                )
    if pixels is not None:
        ax.axhline(pixels, color="grey", linestyle=":", label=f"raw pixels ({pixels:.1f})")
        ax.set_ylim(top=max(ax.get_ylim()[1], pixels + 1))
    ax.set(xlabel="epoch (0: the untrained ViT)", ylabel="offline logreg top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(prog="python3 -m bench.epoch_curve", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (their args.json)")
    parser.add_argument("--labels", nargs="*", help="one per run (default: the folder's name)")
    parser.add_argument("--encoders", nargs="+", default=["target"], choices=("target", "context"))
    parser.add_argument(
        "--every", type=int, default=1, help="every K-th epoch, the first and the last"
    )
    parser.add_argument("--out", type=Path, help="folder for curve.json and curve.png")
    args = parser.parse_args(argv)
    labels = args.labels or [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"--labels: give one per run ({len(args.runs)}), got {len(labels)}")
    print(
        f"{cpu_name()}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    first = run_cfg(args.runs[0])
    print(f"scored on: {scored_split(first.data)}", flush=True)
    pixels, pixel_s = _scored(flat_pixels, eval_loaders(first))
    points = [_point("raw pixels", "-", 0, pixels, pixel_s)]
    for run, label in zip(args.runs, labels):
        points += run_curve(run, label, args.encoders, args.every)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "curve.json").write_text(json.dumps(points, indent=1) + "\n")
        plot(points[1:], pixels["offline_logreg_top1"], args.out / "curve.png")
    return points


if __name__ == "__main__":
    main()
