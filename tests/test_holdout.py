"""``data.holdout``: a class-stratified share of the training images, the same for every seed and
method, that pretraining never sees and validation and the offline evaluation score on, with the
test set left unread. Images are told apart by their pixels (each generated image is unique), not
by the indices the split works with."""

import json

import numpy as np
import pytest
from cjepa_helpers import compose_config, fast_overrides, image_folder, run_dirs, write_idx
from lightning.pytorch import Callback, seed_everything
from torchvision.datasets import CIFAR10

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.data.fashion_mnist import FashionMNIST
from solo_cjepa.launch.data.holdout import split_holdout
from solo_cjepa.launch.data.loaders import pretrain_dataset, pretrain_val_loader
from solo_cjepa.launch.run import prepare_pretrain_cfg, pretrain
from solo_cjepa.tools.offline_eval import eval_loaders
from solo_cjepa.tools.offline_eval import main as evaluate_command

# images per class of the generated training set, unbalanced, shuffled
PER_CLASS = (50, 30, 20)


def unique_images(labels: np.ndarray) -> np.ndarray:
    """One 28x28 image per label, each different: the image's number in its first two pixels."""
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(len(labels)) % 256, np.arange(len(labels)) // 256
    return images


def training_only_fashion_mnist(folder, per_class=PER_CLASS):
    """Fashion-MNIST IDX files of a training split only: reading the test split would fail (or
    try a download, which the tests have no network for)."""
    labels = np.random.default_rng(1).permutation(np.repeat(np.arange(len(per_class)), per_class))
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", unique_images(labels))
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    return folder, unique_images(labels), labels


def pixel_set(images) -> set:
    return {np.asarray(image).tobytes() for image in images}


def counts(targets) -> list:
    return np.bincount(np.asarray(targets), minlength=len(PER_CLASS)).tolist()


def test_split_is_stratified_disjoint_and_independent_of_the_run_seed(tmp_path):
    folder, images, _ = training_only_fashion_mnist(tmp_path / "fmnist")
    splits = []
    for seed in (0, 7):  # the run's seed sets every global generator; the split must not follow
        seed_everything(seed)
        splits.append(split_holdout(FashionMNIST(folder), 0.2, -1.0))
    (train, held), (_, held_again) = splits
    assert counts(held.targets) == [10, 6, 4]  # 20 % of each class
    assert counts(train.targets) == [40, 24, 16]
    assert pixel_set(held.images).isdisjoint(pixel_set(train.images))
    assert pixel_set(held.images) | pixel_set(train.images) == pixel_set(images)
    assert np.array_equal(held.images, held_again.images)
    # data.fraction subsamples what the holdout leaves, by class again
    subset, held_too = split_holdout(FashionMNIST(folder), 0.2, 0.5)
    assert np.array_equal(held_too.images, held.images)
    assert counts(subset.targets) == [20, 12, 8]
    assert pixel_set(subset.images) < pixel_set(train.images)


def test_cifar_layout_is_split_with_the_validation_transform():
    # torchvision's CIFAR keeps images in `data` and labels in the list `targets`
    labels = np.repeat(np.arange(3), PER_CLASS)
    cifar = CIFAR10.__new__(CIFAR10)
    cifar.data = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), np.uint8)
    cifar.targets, cifar.transform, cifar.target_transform = labels.tolist(), None, None
    train, held = split_holdout(cifar, 0.1, -1.0, val_transform=np.asarray)
    assert counts(held.targets) == [5, 3, 2] and len(train.data) == 90
    image, label = held[0]
    assert any(np.array_equal(image, original) for original in cifar.data[labels == label])
    assert cifar.transform is None and len(cifar.data) == 100  # the source is left as it was


def _fashion_cfg(folder, seed=0, name="cjepa", *extra):
    overrides = [
        f"data.train_path={folder}",
        f"data.val_path={folder}",
        "data.num_workers=0",
        "data.holdout=0.1",
        f"++seed={seed}",
        *extra,
    ]
    return prepare_pretrain_cfg(compose_config("pretrain", "fashion-mnist", name, overrides))


def test_every_seed_and_method_validates_on_the_same_training_images(tmp_path):
    folder, images, _ = training_only_fashion_mnist(tmp_path / "fmnist")
    held = [
        pretrain_val_loader(_fashion_cfg(folder, seed, name)).dataset
        for seed, name in ((0, "cjepa"), (3, "cjepa"), (3, "vicreg"))
    ]
    assert counts(held[0].targets) == [5, 3, 2]
    for other in held[1:]:
        assert np.array_equal(other.images, held[0].images)
    assert pixel_set(held[0].images) <= pixel_set(images)
    trained = pretrain_dataset(_fashion_cfg(folder, 3, "vicreg", "data.fraction=0.5"))
    assert counts(trained.targets) == [22, 14, 9]  # half of each class of the 90 left
    assert pixel_set(trained.images).isdisjoint(pixel_set(held[0].images))
    # the offline evaluation fits on all the rest (data.fraction aside) and scores on them
    fit, scored = eval_loaders(_fashion_cfg(folder, 0, "ijepa", "data.fraction=0.5"))
    assert np.array_equal(scored.dataset.images, held[0].images)
    assert pixel_set(fit.dataset.images) == pixel_set(images) - pixel_set(held[0].images)


def test_image_folder_holds_out_files_of_the_training_folder(tmp_path):
    train = image_folder(tmp_path / "train", num_classes=5, per_class=8, size=32)
    overrides = [
        f"data.train_path={train}",
        "data.val_path=null",  # not needed: the validation images come from the training folder
        "data.holdout=0.25",
        "data.num_workers=0",
        "backbone.kwargs.img_size=32",
        "augmentations.0.crop_size=32",
    ]
    cfg = prepare_pretrain_cfg(compose_config("pretrain", "custom", "cjepa", overrides))
    held = pretrain_val_loader(cfg).dataset
    trained = pretrain_dataset(cfg)
    held_files = {path for path, _ in held.samples}
    assert counts_of(held.samples) == [2] * 5
    assert all(path.startswith(str(train)) for path in held_files)
    assert held_files.isdisjoint(path for path, _ in trained.samples)
    assert len(trained) == 30
    images, labels = next(iter(pretrain_val_loader(cfg)))
    assert images.shape[1:] == (3, 32, 32) and set(labels.tolist()) <= set(range(5))


def counts_of(samples) -> list:
    return np.bincount([label for _, label in samples]).tolist()


@pytest.mark.parametrize(
    "config,overrides,message",
    [
        ("fashion-mnist/cjepa", ["data.holdout=1"], "data.holdout must be a number in [0, 1)"),
        ("fashion-mnist/cjepa", ["data.holdout=-0.1"], "data.holdout must be a number in [0, 1)"),
        ("fashion-mnist/cjepa", ["data.holdout=true"], "in [0, 1) (the share of the training"),
        ("cifar/cjepa", ["data.dataset=stl10", "data.holdout=0.1"], "works for data.dataset in"),
        ("imagenet-100/cjepa-dali", ["data.holdout=0.1"], "needs data.format=image_folder"),
        (
            "custom/cjepa",
            ["data.no_labels=True", "data.holdout=0.1"],
            "splits the training images by class: it needs labels",
        ),
    ],
)
def test_bad_holdout_names_the_setting(config, overrides, message):
    dataset, name = config.split("/")
    with pytest.raises(ConfigError) as err:
        prepare_pretrain_cfg(compose_config("pretrain", dataset, name, overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_too_small_a_holdout_names_the_setting(tmp_path):
    train = image_folder(tmp_path / "train", num_classes=5, per_class=2, size=32)
    overrides = [f"data.train_path={train}", "data.holdout=0.2", "data.num_workers=0"]
    cfg = prepare_pretrain_cfg(compose_config("pretrain", "custom", "cjepa", overrides))
    with pytest.raises(ConfigError, match="data.holdout=0.2 leaves too few images of 'custom'"):
        pretrain_val_loader(cfg)  # 2 of 10 images cannot hold out one of each of 5 classes


def test_pretraining_validates_on_the_held_out_training_images(tmp_path, capsys):
    folder, images, _ = training_only_fashion_mnist(tmp_path / "fmnist", per_class=(40,) * 10)
    seen = {}

    class Spy(Callback):
        def on_validation_start(self, trainer, pl_module):
            seen["val"] = trainer.val_dataloaders.dataset
            seen["train"] = trainer.train_dataloader.dataset

    data = [f"data.train_path={folder}", "data.num_workers=0"]
    overrides = [*fast_overrides(tmp_path / "models"), *data, "data.holdout=0.1"]
    trainer = pretrain(compose_config("pretrain", "fashion-mnist", "cjepa", overrides), [Spy()])
    assert trainer.global_step == 2
    held = seen["val"]
    assert len(held) == 40 and counts(held.targets) == [4] * 10
    assert pixel_set(held.images) <= pixel_set(images)
    assert pixel_set(held.images).isdisjoint(pixel_set(seen["train"].images))
    assert 0 <= trainer.callback_metrics["val_acc1"] <= 100

    # the evaluation command takes the run's holdout from its args.json: it scores the 40
    # held-out images (top-1 in steps of 2.5 %), and never reads the absent test split
    (run,) = run_dirs(tmp_path / "models", "cjepa")
    linear = (
        "main_linear.py --config-name cjepa.yaml data.holdout=0.1 pretrained_feature_extractor="
    )
    assert linear in capsys.readouterr().err  # the linear evaluation it suggests holds out alike
    evaluate_command([str(run), "--config", "cjepa", "--", *data, "backbone.name=vit_nano"])
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["split"] == "holdout" and scores["encoder"] == "target"
    for key in ("offline_logreg_top1", "offline_knn_top1"):
        assert scores[key] / 2.5 == pytest.approx(round(scores[key] / 2.5))
    # --holdout sets another share, with a note that the run trained on some of its images
    evaluate_command([str(run), "--holdout", "0.2", "--", *data, "backbone.name=vit_nano"])
    out = capsys.readouterr()
    assert "data.holdout=0.2, but the run held out data.holdout=0.1" in out.err
    assert json.loads(out.out.strip().splitlines()[-1])["split"] == "holdout"
