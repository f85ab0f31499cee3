"""The launchers as users run them: ``python main_pretrain.py --config-name cjepa.yaml`` (default
config directory, any working directory) for a few steps on Fashion-MNIST, saying what runs and
what came out, then the ``main_linear.py`` command its summary gives, on the checkpoint it wrote."""

import csv
import shlex
import subprocess
import sys

from cjepa_helpers import REPO, fashion_mnist_dir, run_dirs


def _launch(script: str, cwd, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / script), "--config-name", "cjepa.yaml", *overrides]
    return _run(command, cwd)


def _run(command, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _metrics(run_dir) -> dict:
    """Last logged value of every metric in the run's metrics.csv."""
    last = {}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            last.update({k: float(v) for k, v in row.items() if v})
    return last


FAST = [
    "backbone.name=vit_nano",
    "optimizer.batch_size=16",
    "data.num_workers=0",
    "max_epochs=1",
    "+limit_train_batches=3",
    "+limit_val_batches=2",
    "+log_every_n_steps=1",
]


def test_pretrain_then_linear_from_another_directory(tmp_path):
    data = fashion_mnist_dir(tmp_path)
    paths = [f"data.train_path={data}", f"data.val_path={data}"]
    pretrain = _launch("main_pretrain.py", tmp_path, *FAST, *paths)
    assert pretrain.returncode == 0, pretrain.stderr[-3000:]

    # relative checkpoint.dir: the run lands under the working directory, with its metrics file
    (run,) = run_dirs(tmp_path / "trained_models", "cjepa")
    assert len(list(run.glob("cjepa-fashion-mnist-*-ep=0.ckpt"))) == 1
    assert (run / "args.json").is_file()
    metrics = _metrics(run)
    for key in ("val_acc1", "momentum_val_acc1", "train_jepa_loss_step", "lr-AdamW/backbone"):
        assert key in metrics, key
    # what runs, the progress bar with the loss and online top-1, and what came out
    notes = [line for line in pretrain.stderr.splitlines() if line.startswith("[solo-cjepa]")]
    assert (
        "[solo-cjepa] training CJEPA on 1 cpu device(s) x 1 node(s) = 1 process(es), "
        "precision 32-true, strategy SingleDeviceStrategy"
    ) in notes
    assert "Epoch 0" in pretrain.stdout and "loss=" in pretrain.stdout
    assert "val_acc1=" in pretrain.stdout
    run, (ckpt,) = run.relative_to(tmp_path), run.glob("*.ckpt")  # relative paths, as given
    assert f"[solo-cjepa] done: 3 steps, run folder {run}" in notes
    assert f"[solo-cjepa] last checkpoint: {ckpt.relative_to(tmp_path)}" in notes
    assert any(line.startswith("[solo-cjepa] final online metrics: val_acc1") for line in notes)
    assert "pin_memory" not in pretrain.stderr and "LeafSpec" not in pretrain.stderr

    evaluate = notes[-1].removeprefix("[solo-cjepa] evaluate it: ")
    assert evaluate.endswith(
        f"main_linear.py --config-name cjepa.yaml pretrained_feature_extractor={run}"
    )
    command = [sys.executable, *shlex.split(evaluate)[1:], *FAST, *paths]
    command.append("pretrained_encoder=target")
    linear = _run(command, tmp_path)
    assert linear.returncode == 0, linear.stderr[-3000:]
    (linear_run,) = run_dirs(tmp_path / "trained_models", "linear")
    assert 0 <= _metrics(linear_run)["val_acc1"] <= 100
    assert list(linear_run.glob("*.ckpt"))


def test_bad_input_stops_with_one_line(tmp_path):
    result = _launch("main_pretrain.py", tmp_path, "data.dataset=imagenet-100")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: data.dataset must be one of ['cifar10', 'cifar100', 'stl10', 'imagenet', "
        "'imagenet100', 'custom', 'fashion-mnist'], got 'imagenet-100'"
    )
    assert not (tmp_path / "trained_models").exists()
