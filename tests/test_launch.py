"""The launchers as users run them: ``python main_pretrain.py --config-name cjepa.yaml`` (default
config directory, any working directory) for a few steps on Fashion-MNIST, then
``python main_linear.py`` on the checkpoint it wrote."""

import csv
import subprocess
import sys

from cjepa_helpers import REPO, fashion_mnist_dir, run_dirs


def _launch(script: str, cwd, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            str(REPO / script),
            "--config-name",
            "cjepa.yaml",
            *overrides,
        ],
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
    assert "Epoch 0" in pretrain.stdout  # the progress bar

    linear = _launch(
        "main_linear.py",
        tmp_path,
        *FAST,
        *paths,
        f"pretrained_feature_extractor={run}",
        "pretrained_encoder=target",
    )
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
