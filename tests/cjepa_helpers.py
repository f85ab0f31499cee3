"""Shared builders for the tests: a small C-JEPA cfg, fake-image loaders through solo's own
transform pipeline, and a CPU trainer. (Not named ``tests.*``: solo-learn's wheel ships a
top-level ``tests`` package.)"""

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch import Callback, Trainer
from omegaconf import OmegaConf
from PIL import Image
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    dataset_with_index,
)
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData
from torchvision.transforms import ToTensor

import solo_cjepa  # noqa: F401  (registers "cjepa")
import solo_cjepa.method

IMG_SIZE = 32
PATCH_SIZE = 4


def tiny_vit_cfg(num_large_crops: int = 1, num_classes: int = 10, **method_kwargs):
    """vit_nano on 32 px crops (8x8 patches): fast enough for CPU fits."""
    cfg = OmegaConf.create(
        {
            "name": "cjepa-test",
            "method": "cjepa",
            "backbone": {
                "name": "vit_nano",
                "kwargs": {"img_size": IMG_SIZE, "patch_size": PATCH_SIZE},
            },
            "method_kwargs": {
                "pred_depth": 1,
                "pred_embed_dim": 48,
                "min_keep": 4,
                **method_kwargs,
            },
            "momentum": {"base_tau": 0.996, "final_tau": 1.0},
            "data": {
                "dataset": "custom",
                "num_large_crops": num_large_crops,
                "num_small_crops": 0,
                "num_classes": num_classes,
            },
            "optimizer": {
                "name": "adamw",
                "batch_size": 8,
                "lr": 1e-3,
                "classifier_lr": 1e-3,
                "weight_decay": 0.04,
            },
            "scheduler": {"name": "warmup_cosine", "warmup_epochs": 0},
            "max_epochs": 1,
            "seed": 0,
            "devices": 1,
            "accelerator": "cpu",
            "num_nodes": 1,
        }
    )
    OmegaConf.set_struct(cfg, False)
    return cfg


def pretrain_loader(
    num_large_crops: int = 1, num_classes: int = 10, size: int = 32, batch_size: int = 8
):
    aug = OmegaConf.create(
        {
            "rrc": {"enabled": True, "crop_min_scale": 0.3, "crop_max_scale": 1.0},
            "color_jitter": {"prob": 0.0},
            "grayscale": {"prob": 0.0},
            "gaussian_blur": {"prob": 0.0},
            "solarization": {"prob": 0.0},
            "equalization": {"prob": 0.0},
            "horizontal_flip": {"prob": 0.5},
            "crop_size": IMG_SIZE,
            "num_crops": num_large_crops,
        }
    )
    transform = FullTransformPipeline(
        [NCropAugmentation(build_transform_pipeline("custom", aug), num_large_crops)]
    )
    dataset = dataset_with_index(FakeData)(
        size=size, image_size=(3, IMG_SIZE, IMG_SIZE), num_classes=num_classes, transform=transform
    )
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)


def val_loader(num_classes: int = 10, size: int = 32, batch_size: int = 8):
    dataset = FakeData(
        size=size, image_size=(3, IMG_SIZE, IMG_SIZE), num_classes=num_classes, transform=ToTensor()
    )
    return DataLoader(dataset, batch_size=batch_size)


def cpu_trainer(max_steps: int = 2, callbacks: Optional[List] = None, **kwargs) -> Trainer:
    kwargs = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "limit_train_batches": max_steps,
        "limit_val_batches": 2,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": callbacks,
        **kwargs,
    }
    return Trainer(**kwargs)


def image_batch(batch_size: int = 4, num_large_crops: int = 1, labeled: bool = True):
    crops = [torch.randn(batch_size, 3, IMG_SIZE, IMG_SIZE) for _ in range(num_large_crops)]
    targets = torch.randint(0, 10, (batch_size,)) if labeled else torch.full((batch_size,), -1)
    return [torch.arange(batch_size), crops, targets]


# --- launcher tests: shipped yamls, data on disk, a step recorder --------------------------------

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def compose_config(kind: str, dataset: str, name: str, overrides=()):
    """The shipped ``scripts/<kind>/<dataset>/<name>.yaml``, composed by hydra as in a launcher."""
    config_dir = str(REPO / "scripts" / kind / dataset)
    with initialize_config_dir(config_dir=config_dir, version_base="1.2"):
        return compose(config_name=name, overrides=list(overrides))


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fashion_mnist_dir(tmp_path: Path, num_train: int = 200, num_test: int = 100) -> Path:
    """Debian's Fashion-MNIST when installed, else generated IDX files of the same layout."""
    if DEBIAN_FASHION_MNIST.is_dir():
        return DEBIAN_FASHION_MNIST
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", num_train), ("t10k", num_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def image_folder(root: Path, num_classes: int = 2, per_class: int = 8, size: int = 40) -> Path:
    """A folder of random JPEGs in class sub-folders."""
    rng = np.random.default_rng(0)
    for c in range(num_classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.jpg")
    return root


def fast_overrides(checkpoint_dir: Path, steps: int = 2) -> List[str]:
    """Shrinks any shipped pretraining yaml to a few CPU steps of vit_nano."""
    return [
        "backbone.name=vit_nano",
        "devices=1",
        "optimizer.batch_size=8",
        "data.num_workers=0",
        f"checkpoint.dir={checkpoint_dir}",
        f"+limit_train_batches={steps}",
        "+limit_val_batches=2",
        "+num_sanity_val_steps=0",
        "+enable_progress_bar=False",
        "+enable_model_summary=False",
        "max_epochs=1",
    ]


class StepRecorder(Callback):
    """Records, per optimiser step: loss, learning rates, weight decays and the EMA tau."""

    def __init__(self):
        self.steps = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        optimizer = trainer.optimizers[0]
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.steps[trainer.global_step] = {
            "loss": float(loss),
            "lr": [group["lr"] for group in optimizer.param_groups],
            "weight_decay": [group["weight_decay"] for group in optimizer.param_groups],
            "tau": pl_module.momentum_updater.cur_tau,
        }


class InfiniteCovariance(Callback):
    """From global step ``step`` on (on process ``rank`` only, if given), C-JEPA's VICReg
    covariance term, and so its loss, is +inf."""

    def __init__(self, step: int, rank=None):
        self.step, self.rank = step, rank
        self.regularizer = solo_cjepa.method.vicreg_regularizer

    def on_train_batch_start(self, trainer, *args):
        poisoned = trainer.global_step >= self.step and self.rank in (None, trainer.global_rank)
        regularizer = self.regularizer

        def poisoned_regularizer(*args, **kwargs):
            terms = regularizer(*args, **kwargs)
            return terms._replace(loss=terms.loss + math.inf, cov=terms.cov + math.inf)

        solo_cjepa.method.vicreg_regularizer = poisoned_regularizer if poisoned else regularizer


def run_dirs(checkpoint_dir: Path, method: str) -> List[Path]:
    """Run folders under ``<checkpoint_dir>/<method>``, oldest first."""
    root = Path(checkpoint_dir) / method
    runs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sorted(runs, key=os.path.getmtime)


# --- many launches in one process: each stops before (or at) its first step --------------------

_LAUNCH_MANY = """
import contextlib, io, json, os, runpy, sys, traceback
spec, out = sys.argv[1:3]
cases = json.load(open(spec))
results = []
for script, args, cwd in cases:
    os.chdir(cwd)
    sys.argv = [script, *args]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            if script.startswith("-m "):  # python -m <module>
                runpy.run_module(script[3:], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append({"code": code, "stderr": err.getvalue()})
json.dump(results, open(out, "w"))
"""


def launch_many(cases, tmp_path: Path, timeout_s: float = 600) -> List[dict]:
    """Runs each ``(script, args, cwd)`` as ``python <script> <args>`` would (``script`` a file
    of the repo, or ``-m <module>`` for ``python -m <module>``), one after another in a single
    fresh interpreter (a launch costs seconds of imports), and returns each one's exit code and
    stderr. A run that trains leaves state (seeds, Lightning's globals) a later case inherits:
    fine for smoke runs, not for comparing runs step by step."""
    spec, out = tmp_path / "launch_cases.json", tmp_path / "launch_results.json"
    scripts = [s if s.startswith("-m ") else str(REPO / s) for s, _, _ in cases]
    spec.write_text(json.dumps([[s, list(a), str(c)] for s, (_, a, c) in zip(scripts, cases)]))
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCH_MANY, str(spec), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


# --- launches of several processes: bounded, and nothing left behind ---------------------------


DDP_VARS = ("LOCAL_RANK", "NODE_RANK", "GLOBAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _live_processes(session: int) -> List[int]:
    """Processes of ``session`` that still run (zombies, exited but not yet reaped, excluded)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while being read
            continue
        state, sid = fields[0], int(fields[4])
        if sid == session and state != "Z":
            live.append(int(stat.parent.name))
    return live


def run_bounded(command: List[str], cwd, timeout_s: float, env=None) -> subprocess.CompletedProcess:
    """Runs ``command`` (which may start more processes, as Lightning's DDP launcher does) in a
    session of its own; fails the test if it is not done within ``timeout_s`` (a stalled
    collective) or if any process of that session still runs after it, killing them all."""
    # A DDP fit earlier in this test process leaves Lightning's launch variables (LOCAL_RANK,
    # MASTER_PORT, ...) in os.environ: inherited, they would make the launch wait for processes
    # it believes someone else starts.
    env = {k: v for k, v in (os.environ if env is None else env).items() if k not in DDP_VARS}
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"stalled: not done after {timeout_s:g} s: {' '.join(command)}\n{stderr[-3000:]}"
        ) from None
    left = _live_processes(proc.pid)
    if left:
        os.killpg(proc.pid, 9)
        raise AssertionError(f"processes {left} left behind by: {' '.join(command)}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
