"""Datasets and loaders of the launchers: solo-learn's for its datasets, ours for Fashion-MNIST,
and evaluation transforms at the training image size with the pretraining normalisation (solo's
transforms for custom and ImageNet data are fixed at 224 px, which breaks small ViTs).
"""

import contextlib
from functools import partial
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf
from solo.data import classification_dataloader, pretrain_dataloader
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    dataset_with_index,
)
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from solo_cjepa.errors import ConfigError, require
from solo_cjepa.launch.data import fashion_mnist
from solo_cjepa.launch.data.holdout import holdout_of, split_holdout
from solo_cjepa.launch.data.images import FlatImageFolder, UnreadablePolicy

IMAGE_FOLDERS = ("imagenet", "imagenet100", "custom")


_RANDOM_AUGMENTATIONS = (
    "color_jitter", "grayscale", "gaussian_blur", "solarization", "equalization", "horizontal_flip"
)  # fmt: skip


def normalization(
    dataset: str, mean: Optional[Sequence] = None, std: Optional[Sequence] = None
) -> transforms.Normalize:
    """The ``Normalize`` that solo's pretraining pipeline uses for ``dataset`` (its own statistics
    for cifar/stl/imagenet, else ``mean``/``std``, else ImageNet's), taken from that pipeline."""
    plain = OmegaConf.create(
        {
            "crop_size": 1,
            "rrc": {"enabled": False},
            **{aug: {"prob": 0.0} for aug in _RANDOM_AUGMENTATIONS},
            **({"mean": list(mean), "std": list(std)} if mean is not None else {}),
        }
    )
    return build_transform_pipeline(dataset, plain).transforms[-1]


def eval_transform(dataset: str, size: int, normalize: Callable) -> Callable:
    """Validation transform at ``size`` px: photos are resized to size*256/224 and centre-cropped,
    as ImageNet evaluation does; the small, centred datasets are resized whole."""
    if dataset in IMAGE_FOLDERS:
        resize = [transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)]
    else:
        resize = [transforms.Resize((size, size))]
    return transforms.Compose([*resize, transforms.ToTensor(), normalize])


def linear_train_transform(size: int, normalize: Callable) -> Callable:
    """solo-learn's linear-evaluation augmentation, at ``size`` px."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=(0.08, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )


def _subsets(data: DictConfig) -> List[str]:
    """``key=value`` of the settings that train on a part of the training images."""
    fraction = [f"data.fraction={data.fraction}"] if 0 < data.fraction < 1 else []
    return fraction + ([f"data.holdout={holdout_of(data)}"] if holdout_of(data) else [])


@contextlib.contextmanager
def _data_errors(data: DictConfig) -> Iterator[None]:
    """Turns the errors of building a dataset into ConfigErrors naming the keys at fault."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:  # scikit-learn's stratified splits behind data.fraction/holdout
        subsets = _subsets(data) or [f"data.fraction={data.fraction}"]
        raise ConfigError(
            f"{' and '.join(subsets)} {'leaves' if len(subsets) == 1 else 'leave'} too few images "
            f"of {data.dataset!r} for a subset with every class ({err})"
        ) from None
    except (OSError, RuntimeError) as err:  # missing files, or a failed CIFAR/STL download
        raise ConfigError(
            f"data.dataset={data.dataset!r}: cannot read or download it from data.train_path="
            f"{data.train_path!r} / data.val_path={data.get('val_path')!r} "
            f"({type(err).__name__}: {' '.join(str(err).split())})"
        ) from None


def _read_policy(dataset: Dataset, data: DictConfig, key: str) -> Dataset:
    """Datasets that read image files (they have a ``loader``) get ``data.unreadable_images``."""
    if not hasattr(dataset, "loader"):
        return dataset
    policy = data.get("unreadable_images", "skip")  # args.json of runs older than the key
    return UnreadablePolicy(dataset, policy, f"{key}={data.get(key[5:])!r}")


def _flat_folder(data: DictConfig, transform: Callable) -> Dataset:
    dataset = dataset_with_index(FlatImageFolder)(data.train_path, transform)
    if 0 < data.fraction < 1:
        from sklearn.model_selection import train_test_split

        dataset.samples, _ = train_test_split(
            dataset.samples, train_size=data.fraction, random_state=42
        )
    return dataset


def pretrain_dataset(cfg: DictConfig) -> Dataset:
    """Training set yielding ``(index, [crops], target)``, crops as ``cfg.augmentations`` says;
    with ``data.holdout``, without the held-out images."""
    data = cfg.data
    holdout = holdout_of(data)
    fraction = -1.0 if holdout else data.fraction  # with a holdout: a fraction of what it leaves
    transform = FullTransformPipeline(
        [
            NCropAugmentation(build_transform_pipeline(data.dataset, aug), aug.num_crops)
            for aug in cfg.augmentations
        ]
    )
    with _data_errors(data):
        if data.dataset == fashion_mnist.NAME:
            dataset = dataset_with_index(fashion_mnist.FashionMNIST)(
                data.train_path, True, transform, data.download_dir, fraction
            )
        elif data.dataset == "custom" and data.no_labels:
            dataset = _flat_folder(data, transform)
        else:
            dataset = pretrain_dataloader.prepare_datasets(
                data.dataset,
                transform,
                train_data_path=data.train_path,
                data_format=data.format,
                no_labels=data.no_labels,
                data_fraction=fraction,
            )
        if holdout:
            dataset, _ = split_holdout(dataset, holdout, data.fraction)
    return _read_policy(dataset, data, "data.train_path")


def classification_datasets(
    cfg: DictConfig, train_transform: Callable, val_transform: Callable
) -> Tuple[Dataset, Dataset]:
    """Labelled train and validation sets of ``cfg.data`` (image folders in place of DALI); with
    ``data.holdout``, the validation set is the held-out training images and the training set
    the rest, and ``data.val_path`` is not read."""
    data = cfg.data
    holdout = holdout_of(data)
    fraction = -1.0 if holdout else data.fraction  # with a holdout: a fraction of what it leaves
    with _data_errors(data):
        if data.dataset == fashion_mnist.NAME:
            read = partial(fashion_mnist.FashionMNIST, download_dir=data.download_dir)
            train = read(data.train_path, True, train_transform, fraction=fraction)
            val = None if holdout else read(data.val_path, False, val_transform)
        else:
            train, val = classification_dataloader.prepare_datasets(
                data.dataset,
                train_transform,
                val_transform,
                train_data_path=data.train_path,
                # solo builds a validation set in any case: with a holdout, from the training
                # path (CIFAR's test batch, a second scan of an image folder) and then dropped
                val_data_path=data.train_path if holdout else data.val_path,
                data_format="image_folder" if data.format == "dali" else data.format,
                data_fraction=fraction,
            )
        if holdout:
            train, val = split_holdout(train, holdout, data.fraction, val_transform)
    val_key = "data.train_path" if holdout else "data.val_path"
    return _read_policy(train, data, "data.train_path"), _read_policy(val, data, val_key)


def require_full_batch(cfg: DictConfig, num_images: int) -> None:
    """Training drops the last, incomplete batch of every process, so a training set smaller than
    one batch per process would train zero steps and exit as if it had succeeded."""
    processes = len(cfg.devices) * cfg.num_nodes
    subset = f" ({', '.join(_subsets(cfg.data))})" if _subsets(cfg.data) else ""
    require(
        num_images // processes >= cfg.optimizer.batch_size,
        f"optimizer.batch_size={cfg.optimizer.batch_size} is more than the {num_images} training "
        f"images{subset} give each of {processes} process(es): no full batch to train on; "
        "lower optimizer.batch_size or use more images",
    )


def pretrain_eval_transform(cfg: DictConfig) -> Callable:
    """The validation transform of a pretraining cfg: its first crop's size and normalisation,
    no augmentation (online validation and the offline evaluation alike)."""
    first = cfg.augmentations[0]
    normalize = normalization(cfg.data.dataset, first.get("mean"), first.get("std"))
    return eval_transform(cfg.data.dataset, first.crop_size, normalize)


def pretrain_val_loader(cfg: DictConfig) -> Optional[DataLoader]:
    """Loader for the online classifiers' validation, at the size of the training crops (with
    ``data.holdout``: on the held-out training images); ``None`` where solo-learn has none (image
    folders without ``val_path``, unlabelled custom data)."""
    data = cfg.data
    if data.dataset in IMAGE_FOLDERS and (data.val_path is None or data.no_labels):
        return None
    val_transform = pretrain_eval_transform(cfg)
    _, val_dataset = classification_datasets(cfg, val_transform, val_transform)
    return DataLoader(
        val_dataset, batch_size=cfg.optimizer.batch_size, num_workers=data.num_workers
    )


def linear_loaders(cfg: DictConfig) -> Tuple[DataLoader, DataLoader]:
    """Train and validation loaders for linear evaluation at ``data.augmentations.crop_size``."""
    aug = cfg.data.augmentations
    normalize = normalization(cfg.data.dataset, aug.mean, aug.std)
    if cfg.auto_augment:
        from timm.data import create_transform

        train_transform = create_transform(
            input_size=aug.crop_size,
            is_training=True,
            auto_augment="rand-m9-mstd0.5-inc1",
            interpolation="bicubic",
            re_prob=0.25,
            re_mode="pixel",
            mean=normalize.mean,
            std=normalize.std,
        )
    else:
        train_transform = linear_train_transform(aug.crop_size, normalize)
    val_transform = eval_transform(cfg.data.dataset, aug.crop_size, normalize)
    train, val = classification_datasets(cfg, train_transform, val_transform)
    require_full_batch(cfg, len(train))
    return classification_dataloader.prepare_dataloaders(
        train, val, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers
    )
