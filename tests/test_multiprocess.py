"""The launchers with two processes (CPU DDP over gloo) and every default on, the progress bar
included: pretraining over two epochs with checkpoints and the end summary, a resume from the
first epoch's checkpoint, linear evaluation and fine-tuning, the two-view mode, unlabelled data
and the comparison's training entry point. A rank that stalls fails its test within a bounded
time (no hang), and no process outlives a launch."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from cjepa_helpers import REPO, fashion_mnist_dir, run_bounded, run_dirs
from PIL import Image

TIMEOUT_S = 180  # a launch takes ~20 s; a stalled collective never ends on its own
TWO_PROCESSES = [
    "devices=2",
    "backbone.name=vit_nano",
    "optimizer.batch_size=8",
    "data.num_workers=0",
    "max_epochs=2",
    "+limit_train_batches=2",
    "+limit_val_batches=2",
]
# the custom yaml (224 px ViT-B) shrunk to the 7x7 grid of the Fashion-MNIST yaml
SMALL_IMAGES = [
    "backbone.kwargs.img_size=28",
    "backbone.kwargs.patch_size=4",
    "augmentations.0.crop_size=28",
    "method_kwargs.num_targets=3",
    "method_kwargs.min_keep=4",
    "method_kwargs.pred_depth=1",
    "method_kwargs.pred_embed_dim=48",
]


def _launch(script, tmp_path, *overrides, module=False, config_dir="fashion-mnist", env=None):
    target = ["-m", script] if module else [str(REPO / script)]
    kind = "linear" if script == "main_linear.py" else "pretrain"
    config = ["--config-path", str(REPO / "scripts" / kind / config_dir), "--config-name", "cjepa"]
    command = [sys.executable, *target, *config, *TWO_PROCESSES, *overrides]
    run = run_bounded(command, tmp_path, TIMEOUT_S, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _notes(run):
    return [line for line in run.stderr.splitlines() if line.startswith("[solo-cjepa]")]


def _logged_epochs(run_dir, key):
    with open(run_dir / "metrics.csv") as f:
        return [row["epoch"] for row in csv.DictReader(f) if row.get(key)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A two-process, two-epoch pretraining run that keeps both epochs' checkpoints."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    data = fashion_mnist_dir(tmp_path)
    paths = (f"data.train_path={data}", f"data.val_path={data}")
    run = _launch("main_pretrain.py", tmp_path, *paths, "checkpoint.keep_prev=True")
    (run_dir,) = run_dirs(tmp_path / "trained_models", "cjepa")
    return tmp_path, paths, run, run_dir


def test_pretraining_finishes_with_checkpoints_and_summary(pretrained):
    _, _, run, run_dir = pretrained
    notes = _notes(run)
    assert any("= 2 process(es)" in n and "DDPStrategy" in n for n in notes), notes
    assert "[solo-cjepa] done: 4 steps, run folder " in "\n".join(notes)
    assert any(n.startswith("[solo-cjepa] final online metrics: val_acc1") for n in notes)
    assert notes[-1].startswith("[solo-cjepa] evaluate it: ")
    assert "loss=" in run.stdout  # the progress bar was on
    assert sorted(p.name[-9:] for p in run_dir.glob("*.ckpt")) == ["ep=0.ckpt", "ep=1.ckpt"]
    # the per-epoch losses, reduced over both processes, reached the log for both epochs
    assert _logged_epochs(run_dir, "train_jepa_loss_epoch") == ["0", "1"]


def test_resume_under_two_processes_continues_exactly(pretrained):
    tmp_path, paths, _, run_dir = pretrained
    (first_epoch,) = run_dir.glob("*ep=0.ckpt")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    run = _launch("main_pretrain.py", resumed, *paths, f"resume_from_checkpoint='{first_epoch}'")
    assert "[solo-cjepa] done: 4 steps" in "\n".join(_notes(run))
    (resumed_dir,) = run_dirs(resumed / "trained_models", "cjepa")
    (reference,), (continued,) = run_dir.glob("*ep=1.ckpt"), resumed_dir.glob("*ep=1.ckpt")
    reference = torch.load(reference, map_location="cpu", weights_only=True)["state_dict"]
    continued = torch.load(continued, map_location="cpu", weights_only=True)["state_dict"]
    assert reference.keys() == continued.keys()
    for key in reference:  # EMA target encoder included
        assert torch.equal(reference[key], continued[key]), key


@pytest.mark.parametrize("finetune", [False, True])
def test_linear_evaluation_finishes(pretrained, finetune):
    tmp_path, paths, _, run_dir = pretrained
    run = _launch(
        "main_linear.py",
        tmp_path,
        *paths,
        f"pretrained_feature_extractor={run_dir}",
        f"finetune={finetune}",
    )
    notes = "\n".join(_notes(run))
    assert "training LinearModel on 2 cpu device(s)" in notes
    assert "done: 4 steps" in notes and "final online metrics: val_acc1" in notes
    linear_dir = run_dirs(tmp_path / "trained_models", "linear")[-1]
    assert _logged_epochs(linear_dir, "val_acc1") == ["0", "1"]


def test_two_view_pretraining_finishes(tmp_path):
    data = fashion_mnist_dir(tmp_path)
    paths = (f"data.train_path={data}", f"data.val_path={data}")
    run = _launch("main_pretrain.py", tmp_path, *paths, "augmentations.0.num_crops=2")
    assert "done: 4 steps" in "\n".join(_notes(run))
    (run_dir,) = run_dirs(tmp_path / "trained_models", "cjepa")
    assert _logged_epochs(run_dir, "train_jepa_loss_epoch") == ["0", "1"]


def test_unlabelled_pretraining_with_a_broken_image_finishes(tmp_path):
    """The custom yaml on a flat folder (no online classifiers), with an unreadable image that
    the process reading it skips."""
    folder = tmp_path / "flat"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "40.png").write_bytes((folder / "0.png").read_bytes()[:60])
    run = _launch(
        "main_pretrain.py",
        tmp_path,
        *SMALL_IMAGES,
        f"data.train_path={folder}",
        "data.no_labels=True",
        config_dir="custom",
    )
    notes = "\n".join(_notes(run))
    assert "data.no_labels=True: online classifiers off" in notes
    assert "done: 4 steps" in notes


def test_comparison_training_entry_point_finishes(tmp_path):
    """The entry point each comparison run executes: its clock logs reduced metrics at every
    epoch's end, and its collapse monitor runs on the first process only."""
    data = fashion_mnist_dir(tmp_path)
    progress = tmp_path / "progress.json"
    env = {**os.environ, "SOLO_CJEPA_PROGRESS_FILE": str(progress)}
    _launch(
        "solo_cjepa.tools.compare.train",
        tmp_path,
        f"data.train_path={data}",
        f"data.val_path={data}",
        "+log_every_n_steps=1",
        module=True,
        env=env,
    )
    (run_dir,) = run_dirs(tmp_path / "trained_models", "cjepa")
    assert _logged_epochs(run_dir, "train_images") == ["0", "1"]
    assert _logged_epochs(run_dir, "monitor_feature_rank")
    assert _logged_epochs(run_dir, "monitor_target_from_context")  # the EMA target's follow-up
    assert '"done": true' in progress.read_text()


# A pretraining launcher whose second process stops answering after its first step.
STALLING_LAUNCHER = """
import sys
import threading
import hydra
from lightning.pytorch import Callback
from solo_cjepa.errors import exit_on_config_error
from solo_cjepa.launch.run import pretrain

class StallSecondProcess(Callback):
    def on_train_batch_end(self, trainer, *args):
        print("batch done on process", trainer.global_rank, file=sys.stderr, flush=True)
        if trainer.global_rank == 1:
            threading.Event().wait()  # never set: the process hangs until it is killed

@hydra.main(version_base="1.2", config_path=CONFIG_DIR, config_name="cjepa")
def main(cfg):
    with exit_on_config_error():
        pretrain(cfg, callbacks=[StallSecondProcess()])

main()
"""


def test_a_stalled_process_ends_the_run_with_one_line(tmp_path):
    """Lightning's hang guard: with ``ddp_timeout_minutes`` the first process gives up on the
    collective the stalled one never joins, the run stops with one ``error:`` line and exit
    status 1, and no process is left."""
    data = fashion_mnist_dir(tmp_path)
    script = tmp_path / "stalling_pretrain.py"
    config_dir = REPO / "scripts" / "pretrain" / "fashion-mnist"
    script.write_text(f"CONFIG_DIR = {str(config_dir)!r}\n" + STALLING_LAUNCHER)
    command = [
        sys.executable,
        str(script),
        *TWO_PROCESSES,
        f"data.train_path={data}",
        f"data.val_path={data}",
        # the timeout also bounds the start-up rendezvous (~20 s idle): 30 s was too short once
        # under CI's load, before process 1 had trained a batch
        "+ddp_timeout_minutes=1",
    ]
    run = run_bounded(command, tmp_path, TIMEOUT_S, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 1, run.stderr[-3000:]
    assert "batch done on process 1" in run.stderr  # stalled in training, not at start-up
    assert run.stderr.strip().splitlines()[-1] == (
        "error: process 0 of 2 waited longer than ddp_timeout_minutes=1 in a collective: "
        "another process stalled or died (its own error, if any, is above); no checkpoint was "
        "written yet"
    )


def test_the_hang_guard_ends_its_processes_without_lightnings_observer_killing_it(tmp_path):
    """After a collective's timeout the guard kills and reaps the processes the launcher started;
    Lightning's observer, which polls the launcher's list of them, must then find nothing to
    avenge: run over a list with a killed child, it SIGKILLs the main process (here a stand-in),
    which turned the run's exit status 1 into -9 whenever the error path took over its 5 s poll."""
    from types import SimpleNamespace

    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
    from omegaconf import OmegaConf

    from solo_cjepa.errors import RunError
    from solo_cjepa.launch.hang_guard import stalled_collectives

    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    child, stand_in = subprocess.Popen(sleep), subprocess.Popen(sleep)
    try:
        launcher = SimpleNamespace(procs=[child])
        observer = _ChildProcessObserver(main_pid=stand_in.pid, child_processes=launcher.procs)
        trainer = SimpleNamespace(
            world_size=2,
            global_rank=0,
            strategy=SimpleNamespace(launcher=launcher),
            callbacks=[],
            ckpt_path=None,
        )
        with pytest.raises(RunError, match="ddp_timeout_minutes=0.5"):
            with stalled_collectives(OmegaConf.create({"ddp_timeout_minutes": 0.5}), trainer):
                raise RuntimeError("[gloo] Timed out waiting 30000ms for recv operation")
        assert child.returncode == -9  # killed and reaped: no zombie, no process left
        assert observer._run()  # the observer is done...
        assert stand_in.poll() is None  # ...and spared the main process
    finally:
        for proc in (child, stand_in):
            proc.kill()
            proc.wait()
