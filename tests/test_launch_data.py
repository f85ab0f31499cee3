"""The launchers' data: Fashion-MNIST read straight from IDX files (gzipped or not), and
validation images at the training crop size (solo's custom/ImageNet transforms give 224 px)."""

import gzip
import shutil

import numpy as np
import torch
from cjepa_helpers import compose_config, image_folder, write_idx

from solo_cjepa.launch.data.fashion_mnist import FashionMNIST, read_idx
from solo_cjepa.launch.data.loaders import pretrain_val_loader
from solo_cjepa.launch.run import prepare_pretrain_cfg


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.arange(40) % 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    # uncompressed files are read as well
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz") as src:
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain" / "t10k-images-idx3-ubyte").write_bytes(src.read())
    shutil.copy(tmp_path / "t10k-labels-idx1-ubyte.gz", tmp_path / "plain")
    assert np.array_equal(read_idx(tmp_path / "plain" / "t10k-images-idx3-ubyte"), images)

    dataset = FashionMNIST(tmp_path, train=False)
    image, label = dataset[3]
    assert image.mode == "RGB" and image.size == (28, 28) and label == 3
    assert np.array_equal(np.asarray(image)[..., 0], images[3])

    subset = FashionMNIST(tmp_path / "plain", train=False, fraction=0.5)
    assert len(subset) == 20 and torch.equal(subset.targets.bincount(), torch.full((10,), 2))


def test_validation_images_have_the_training_size(tmp_path):
    folder = image_folder(tmp_path / "images", num_classes=5, per_class=2, size=40)
    overrides = [
        f"data.train_path={folder}",
        f"data.val_path={folder}",
        "data.num_workers=0",
        "backbone.kwargs.img_size=32",
        "backbone.kwargs.patch_size=4",
        "augmentations.0.crop_size=32",
    ]
    cfg = prepare_pretrain_cfg(compose_config("pretrain", "custom", "cjepa", overrides))
    images, labels = next(iter(pretrain_val_loader(cfg)))
    assert images.shape[1:] == (3, 32, 32)
    assert set(labels.tolist()) <= set(range(5))
