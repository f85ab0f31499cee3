"""What users type or feed in, through the launchers: bad image files, unlabelled folders, tiny
datasets, checkpoint paths and files, wrong types and ranges. Each mistake exits with status 2 and
one ``error:`` line naming the key or file, without a traceback and (but for files found broken
mid-epoch) before training; an unlabelled folder with stray entries and a broken image trains and
says what it did."""

import argparse
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from cjepa_helpers import REPO, compose_config, image_folder, launch_many, run_dirs
from omegaconf import OmegaConf
from PIL import Image

from solo_cjepa.launch.run import prepare_pretrain_cfg

PRETRAIN = "main_pretrain.py"
LINEAR = "main_linear.py"
# the custom yaml shrunk to vit_nano on 32 px images, 4 images a batch, one CPU process
CUSTOM = [
    "backbone.name=vit_nano",
    "backbone.kwargs.img_size=32",
    "backbone.kwargs.patch_size=4",
    "augmentations.0.crop_size=32",
    "method_kwargs.num_targets=3",
    "method_kwargs.min_keep=4",
    "method_kwargs.pred_depth=1",
    "method_kwargs.pred_embed_dim=48",
    "devices=1",
    "optimizer.batch_size=4",
    "data.num_workers=0",
    "max_epochs=1",
    "+limit_train_batches=2",
    "+limit_val_batches=1",
    "+num_sanity_val_steps=0",
]


LINEAR_CUSTOM = [
    "backbone.name=vit_nano",
    "backbone.kwargs.img_size=32",
    "backbone.kwargs.patch_size=4",
    "data.augmentations.crop_size=32",
    *CUSTOM[8:],
]


def _custom(script: str = PRETRAIN):
    """The command line of the custom yaml of ``script``, shrunk."""
    kind = "pretrain" if script == PRETRAIN else "linear"
    shrunk = CUSTOM if script == PRETRAIN else LINEAR_CUSTOM
    return ["--config-path", f"scripts/{kind}/custom", "--config-name", "cjepa.yaml", *shrunk]


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _images(folder, count: int, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}{suffix}")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    f = {"root": root, "runs": root / "runs", "trained": root / "trained"}
    f["labelled"] = image_folder(root / "labelled", num_classes=5, per_class=3)
    # one image a class, all read by the first batch of 5; one of them truncated
    f["broken"] = image_folder(root / "broken", num_classes=5, per_class=1)
    f["bad_image"] = f["broken"] / "class2" / "0.jpg"
    _truncate(f["bad_image"])
    f["empty"] = root / "empty"
    f["empty"].mkdir()
    f["no_images"] = root / "no_images"
    (f["no_images"] / "sub").mkdir(parents=True)
    (f["no_images"] / "notes.txt").write_text("not an image")
    f["a_file"] = root / "a_file"
    f["a_file"].write_text("")

    f["text_ckpt"] = root / "notes.ckpt"
    f["text_ckpt"].write_text("hello")
    torch.save({"state_dict": {"backbone.w": torch.zeros(3)}}, root / "weights.ckpt")
    f["weights_ckpt"] = root / "weights.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "epoch": 0}, root / "truncated.ckpt")
    f["truncated_ckpt"] = root / "truncated.ckpt"
    _truncate(f["truncated_ckpt"])
    torch.save({"args": argparse.Namespace(lr=0.1)}, root / "objects.pth")
    f["objects_ckpt"] = root / "objects.pth"

    # auto_resume: a matching run whose newest checkpoint was cut short
    overrides = [*CUSTOM, f"data.train_path={f['labelled']}", f"checkpoint.dir={root / 'auto'}"]
    cfg = prepare_pretrain_cfg(compose_config("pretrain", "custom", "cjepa", overrides))
    run = root / "auto" / "cjepa" / "old-run"
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    (run / "cjepa-custom-ep=3.ckpt").write_bytes(f["truncated_ckpt"].read_bytes())
    stray = root / "stray" / "cjepa" / "copied"  # a checkpoint without its args.json
    stray.mkdir(parents=True)
    (stray / "model.ckpt").write_bytes(f["weights_ckpt"].read_bytes())
    return f


try:
    import nvidia.dali  # noqa: F401

    DALI = True
except ImportError:
    DALI = False

# (case, launcher, overrides, what the error line says); {name} is a path from `files`
CASES = [
    # 1. bad image files
    ("unreadable image, fail policy", PRETRAIN,
     ["data.train_path={broken}", "data.unreadable_images=fail", "data.num_workers=1",
      "optimizer.batch_size=5", "checkpoint.dir={trained}"],
     "data.train_path='{broken}': cannot read image '{bad_image}' (OSError"),
    ("unreadable image, unknown policy", PRETRAIN,
     ["data.train_path={labelled}", "data.unreadable_images=ignore"],
     "data.unreadable_images must be one of ['skip', 'fail'], got 'ignore'"),
    # 2. unlabelled data
    ("empty folder", PRETRAIN, ["data.train_path={empty}"],
     "data.train_path='{empty}' is an empty folder"),
    ("flat folder without images", PRETRAIN, ["data.train_path={no_images}", "data.no_labels=True"],
     "data.train_path='{no_images}' holds no image files (.jpg"),
    ("unlabelled training, labelled validation", PRETRAIN,
     ["data.train_path={no_images}", "data.no_labels=True", "data.val_path={labelled}"],
     "data.val_path is set but data.no_labels=True"),
    ("no_labels on a labelled dataset", PRETRAIN, ["data.dataset=cifar10", "data.no_labels=True"],
     "data.no_labels=True is for data.dataset=custom (a flat folder), got 'cifar10'"),
    ("no_labels not a flag", PRETRAIN, ["data.train_path={labelled}", "data.no_labels=yes"],
     "data.no_labels must be True or False, got 'yes'"),
    # 3. dataset size
    ("batch larger than the dataset", PRETRAIN,
     ["data.train_path={labelled}", "optimizer.batch_size=16"],
     "optimizer.batch_size=16 is more than the 15 training images give each of 1 process(es)"),
    ("fraction leaves fewer images than classes", PRETRAIN,
     ["data.train_path={labelled}", "data.fraction=0.2"],
     "data.fraction=0.2 leaves too few images of 'custom' for a subset with every class"),
    # 4. checkpoint paths and files
    ("checkpoint.dir is a file", PRETRAIN,
     ["data.train_path={labelled}", "checkpoint.dir={a_file}/runs"],
     "checkpoint.dir='{a_file}/runs' cannot be a folder: '{a_file}' is a file"),
    ("checkpoint.dir not writable", PRETRAIN,
     ["data.train_path={labelled}", "checkpoint.dir=/sys/solo-cjepa-runs"],
     "checkpoint.dir='/sys/solo-cjepa-runs' is not writable: cannot write in '/sys'"),
    ("resume from a text file", PRETRAIN,
     ["data.train_path={labelled}", "resume_from_checkpoint={text_ckpt}"],
     "resume_from_checkpoint='{text_ckpt}' is not a usable checkpoint: not a PyTorch checkpoint"),
    ("resume from a truncated checkpoint", PRETRAIN,
     ["data.train_path={labelled}", "resume_from_checkpoint={truncated_ckpt}"],
     "resume_from_checkpoint='{truncated_ckpt}' is not a usable checkpoint: truncated or corrupt"),
    ("resume from weights only", PRETRAIN,
     ["data.train_path={labelled}", "resume_from_checkpoint={weights_ckpt}"],
     "is not a usable checkpoint: it lacks the training state a resume needs (optimizer_states"),
    ("auto_resume finds a truncated checkpoint", PRETRAIN,
     ["data.train_path={labelled}", "checkpoint.dir={root}/auto", "auto_resume.enabled=True"],
     "auto_resume='{root}/auto/cjepa/old-run/cjepa-custom-ep=3.ckpt' is not a usable checkpoint"),
    ("auto_resume meets a folder without args.json", PRETRAIN,
     ["data.train_path={labelled}", "checkpoint.dir={root}/stray", "auto_resume.enabled=True"],
     "auto_resume.enabled=True cannot read the runs under '{root}/stray/cjepa' (FileNotFound"),
    ("linear from a text file", LINEAR,
     ["pretrained_feature_extractor={text_ckpt}"],
     "pretrained_feature_extractor='{text_ckpt}' is not a usable checkpoint: not a PyTorch"),
    ("linear from a file of Python objects", LINEAR,
     ["pretrained_feature_extractor={objects_ckpt}"],
     "is not a usable checkpoint: it stores Python objects besides tensors"),
    # 5. types and ranges
    ("float for an integer", PRETRAIN,
     ["data.train_path={labelled}", "method_kwargs.num_targets=2.5"],
     "method_kwargs.num_targets must be an integer >= 1, got 2.5"),
    ("string for a number", PRETRAIN, ["data.train_path={labelled}", "optimizer.lr=fast"],
     "optimizer.lr must be a number > 0, got 'fast'"),
    ("float epochs", PRETRAIN, ["data.train_path={labelled}", "max_epochs=1.5"],
     "max_epochs must be an integer >= 1, got 1.5"),
    ("tau above 1", PRETRAIN, ["data.train_path={labelled}", "momentum.base_tau=1.5"],
     "momentum.base_tau must be a number in [0, 1] or null, got 1.5"),
    ("tau decreasing", PRETRAIN,
     ["data.train_path={labelled}", "momentum.base_tau=0.999", "momentum.final_tau=0.99"],
     "momentum.base_tau must be <= momentum.final_tau (the EMA momentum ramps up), got 0.999"),
    ("linear: string for an integer", LINEAR,
     ["pretrained_feature_extractor={weights_ckpt}", "data.train_path={labelled}",
      "data.val_path={labelled}", "optimizer.batch_size=many"],
     "optimizer.batch_size must be an integer >= 1, got 'many'"),
]  # fmt: skip
if DALI:
    CASES.extend([
        ("unreadable image, DALI", PRETRAIN,
         ["data.train_path={broken}", "data.format=dali", "data.num_workers=1",
          "optimizer.batch_size=5", "checkpoint.dir={trained}"],
         "data.format=dali: DALI failed to read an image under data.train_path='{broken}'"),
        ("flat folder with stray entries, DALI", PRETRAIN,
         ["data.train_path={no_images}", "data.no_labels=True", "data.format=dali",
          "data.num_workers=1"],
         "'{no_images}' holds entries that DALI would decode as images (notes.txt, sub)"),
    ])  # fmt: skip
MID_EPOCH = ("unreadable image, fail policy", "unreadable image, DALI")


@pytest.fixture(scope="module")
def results(files):
    cases = []
    for _, script, overrides, _ in CASES:
        args = [o.format(**files) for o in (f"checkpoint.dir={files['runs']}", *overrides)]
        cases.append((script, [*_custom(script), *args], files["root"]))
    return dict(zip([case[0] for case in CASES], launch_many(cases, files["root"])))


@pytest.mark.parametrize("case,script,overrides,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_with_one_error_line(case, script, overrides, message, results, files):
    result = results[case]
    stderr = result["stderr"]
    assert result["code"] == 2, stderr[-3000:]
    assert "Traceback" not in stderr and "weights_only=False" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0]
    assert message.format(**files) in errors[0]
    if case not in MID_EPOCH:
        assert "[solo-cjepa] training" not in stderr
        assert not files["runs"].exists()


def test_unlabelled_folder_with_stray_entries_and_a_broken_image_trains(tmp_path):
    """The shipped custom yaml plus data.no_labels=True: classifiers off with one note, the
    sub-folder and text file ignored, the truncated image named and skipped, no NaN logged."""
    folder = tmp_path / "flat"
    _images(folder, 8)
    bad = folder / "8.png"
    _images(tmp_path / "spare", 1)
    bad.write_bytes((tmp_path / "spare" / "0.png").read_bytes()[:60])
    (folder / "sub").mkdir()
    (folder / "notes.txt").write_text("not an image")
    run = subprocess.run(
        [sys.executable, str(REPO / PRETRAIN), *_custom(), "limit_train_batches=null",
         f"data.train_path={folder}", "data.no_labels=True", "optimizer.batch_size=9",
         f"checkpoint.dir={tmp_path / 'runs'}", "+log_every_n_steps=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[solo-cjepa] data.no_labels=True: online classifiers off" in run.stderr
    assert f"[solo-cjepa] skipped unreadable image {bad} (" in run.stderr
    assert "[solo-cjepa] epoch 0: skipped 1 reads of unreadable images" in run.stderr
    # one batch of the 9 images, the broken one replaced by a readable one
    assert "[solo-cjepa] done: 1 steps" in run.stderr
    (run_dir,) = run_dirs(tmp_path / "runs", "cjepa")
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and not any(k.startswith(("train_class_loss", "train_acc")) for k in rows[0])
    assert not any(v.lower() == "nan" for row in rows for v in row.values())
    assert "loss=" in run.stdout  # the progress bar
    assert "pin_memory" not in run.stderr and "LeafSpec" not in run.stderr
