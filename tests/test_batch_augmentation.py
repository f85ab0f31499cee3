"""``data.batched_augmentations``: which augmentation yamls qualify, the batches the callback makes
from raw ones (solo's layout and dtype, the per-image PIL pipeline's statistics, seeded per run,
rank, epoch and step), the raw loader under Lightning's distributed sampler, and launcher runs of
cjepa (the Fashion-MNIST recipe's default), vicreg and byol with it on."""

from types import SimpleNamespace

import pytest
import torch
from cjepa_helpers import REPO, compose_config, fashion_mnist_dir, fast_overrides
from lightning.pytorch import Callback
from lightning.pytorch.plugins.precision import DoublePrecisionPlugin, PrecisionPlugin
from lightning.pytorch.utilities.data import _update_dataloader
from omegaconf import OmegaConf
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    dataset_with_index,
)
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.datasets import FakeData

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.data.batch_augmentation import (
    BatchAugmentation,
    batch_augmentation,
    batch_crop,
    why_not_batchable,
)
from solo_cjepa.launch.data.fashion_mnist import FashionMNIST
from solo_cjepa.launch.data.raw_batches import RawBatches, raw_batch_loader
from solo_cjepa.launch.run import prepare_pretrain_cfg, pretrain

AUGMENTATIONS = REPO / "scripts" / "pretrain" / "fashion-mnist" / "augmentations"


def _augmentations(name: str, **changes):
    """A shipped augmentation yaml, with ``changes`` (dotted keys) made to each of its entries."""
    augs = OmegaConf.load(AUGMENTATIONS / f"{name}.yaml")
    for aug in augs:
        for key, value in changes.items():
            OmegaConf.update(aug, key, value)
    return augs


def _pipeline(name: str, **changes):
    return build_transform_pipeline("fashion-mnist", _augmentations(name, **changes)[0])


@pytest.mark.parametrize(
    "name, changes, reason",
    [
        ("ijepa", {}, None),
        ("ijepa", {"horizontal_flip.prob": 0.5}, None),
        ("asymmetric", {}, "RandomApply([ColorJitter], p=0.8) has no batched version"),
        ("vicreg", {}, "RandomApply([ColorJitter], p=0.8) has no batched version"),
        ("ijepa", {"grayscale.prob": 0.2}, "RandomGrayscale has no batched version"),
        ("ijepa", {"solarization.prob": 0.1}, "RandomApply([Solarization], p=0.1) has no"),
        ("ijepa", {"rrc.enabled": False}, "Resize has no batched version"),
        ("ijepa", {"crop_size": 14}, "crop_size 14 is below the images' 28 px (a downscale"),
    ],
)
def test_which_pipelines_are_batchable(name, changes, reason):
    found = why_not_batchable(_pipeline(name, **changes), (28, 28))
    assert found == reason if reason is None else found.startswith(reason), found


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return fashion_mnist_dir(tmp_path_factory.mktemp("fashion-mnist"))


def _trainer(rank: int = 0, epoch: int = 0, precision=None) -> SimpleNamespace:
    precision = precision or PrecisionPlugin()
    return SimpleNamespace(global_rank=rank, current_epoch=epoch, precision_plugin=precision)


def _batched(dataset, indices, augs, seed=0, batch_idx=0, **trainer):
    """What the training step gets with batched augmentations on: a raw batch of ``indices``
    after the callback of ``augs`` has run."""
    pipelines = [build_transform_pipeline("fashion-mnist", aug) for aug in augs]
    crops = [batch_crop(p) for p, aug in zip(pipelines, augs) for _ in range(aug.num_crops)]
    batch = RawBatches(dataset.images, dataset.targets).__getitems__(indices)
    BatchAugmentation(crops, seed).on_train_batch_start(_trainer(**trainer), None, batch, batch_idx)
    return batch


def _black_share(images: torch.Tensor) -> float:
    return float((images <= images.min() + 1e-4).float().mean())


def test_batches_have_the_layout_and_statistics_of_solo_pipeline(data_dir):
    augs = _augmentations("ijepa", num_crops=2, **{"horizontal_flip.prob": 0.5})
    transform = FullTransformPipeline(
        [NCropAugmentation(build_transform_pipeline("fashion-mnist", a), a.num_crops) for a in augs]
    )
    dataset = dataset_with_index(FashionMNIST)(data_dir, True, transform)
    indices = list(range(0, 2 * 512, 2))
    per_image = next(iter(DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=512)))
    batched = _batched(dataset, indices, augs)

    assert torch.equal(batched[0], per_image[0]) and torch.equal(batched[2], per_image[2])
    assert batched[2].dtype == per_image[2].dtype == torch.int64
    assert len(batched[1]) == len(per_image[1]) == 2
    for ours, theirs in zip(batched[1], per_image[1]):
        assert ours.shape == theirs.shape == (512, 3, 28, 28) and ours.dtype == theirs.dtype
        # same normalised range, pixel statistics and share of background (black) pixels
        assert torch.isclose(ours.min(), theirs.min()) and ours.max() <= theirs.max() + 1e-5
        assert abs(ours.mean() - theirs.mean()) < 0.03 and abs(ours.std() - theirs.std()) < 0.03
        assert abs(_black_share(ours) - _black_share(theirs)) < 0.03
    assert not torch.allclose(*batched[1])  # two independent crops


def test_crops_are_a_function_of_seed_rank_epoch_and_step(data_dir):
    dataset = FashionMNIST(data_dir, True)
    augs = _augmentations("ijepa", **{"horizontal_flip.prob": 0.5})

    def crops(**changed):
        return _batched(dataset, list(range(16)), augs, **changed)[1][0]

    reference = crops()
    assert torch.equal(reference, crops())
    for changed in ({"seed": 1}, {"batch_idx": 1}, {"epoch": 1}, {"rank": 1}):
        assert not torch.allclose(reference, crops(**changed)), changed


def test_crops_get_the_dtype_of_the_run_precision(data_dir):
    dataset = FashionMNIST(data_dir, True)
    augs = _augmentations("ijepa")
    batch = _batched(dataset, list(range(4)), augs, precision=DoublePrecisionPlugin())
    assert batch[1][0].dtype == torch.float64 and batch[2].dtype == torch.int64


def test_raw_batches_under_lightning_distributed_sampler(data_dir):
    images = FashionMNIST(data_dir, True)
    dataset = RawBatches(images.images[:100], images.targets[:100])
    loader = raw_batch_loader(dataset, batch_size=8)
    assert loader.num_workers == 0
    seen = []
    for rank in (0, 1):  # what Lightning makes of the loader on each of two processes
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, seed=0)
        for indexes, images, targets in _update_dataloader(loader, sampler):
            assert images.shape == (8, 1, 28, 28) and images.dtype == torch.uint8
            assert torch.equal(images[:, 0], torch.from_numpy(dataset.images[indexes.numpy()]))
            assert torch.equal(targets, dataset.targets[indexes])
            seen.append(indexes)
    seen = torch.cat(seen)
    assert len(seen) == len(set(seen.tolist())) == 96  # 50 per process, in 6 full batches


def _cfg(augs, dataset="fashion-mnist", batched=True):
    return OmegaConf.create(
        {
            "data": {"dataset": dataset, "batched_augmentations": batched},
            "augmentations": OmegaConf.to_container(augs),
            "seed": 0,
        }
    )


def test_the_setting_applies_where_it_can_and_says_why_not(data_dir, capsys):
    dataset = FashionMNIST(data_dir, True, fraction=0.01)
    callback = batch_augmentation(_cfg(_augmentations("ijepa", num_crops=2)), dataset)
    assert isinstance(callback, BatchAugmentation) and len(callback.crops) == 2
    assert batch_augmentation(_cfg(_augmentations("ijepa"), batched=False), dataset) is None
    assert capsys.readouterr().err == ""

    assert batch_augmentation(_cfg(_augmentations("vicreg")), dataset) is None
    assert capsys.readouterr().err == (
        "[solo-cjepa] data.batched_augmentations: augmentations[0]: RandomApply([ColorJitter], "
        "p=0.8) has no batched version; augmenting image by image (solo's pipeline)\n"
    )
    images = FakeData(size=8, image_size=(3, 32, 32))
    assert batch_augmentation(_cfg(_augmentations("ijepa"), dataset="cifar10"), images) is None
    assert "data.dataset='cifar10' is read image by image" in capsys.readouterr().err


def test_the_setting_is_a_flag(data_dir):
    overrides = [f"data.train_path={data_dir}", "data.batched_augmentations=yes"]
    with pytest.raises(ConfigError, match="data.batched_augmentations must be True or False"):
        prepare_pretrain_cfg(compose_config("pretrain", "fashion-mnist", "cjepa", overrides))


class BatchRecorder(Callback):
    """The crops the training step gets (data callbacks run before the user's)."""

    def __init__(self):
        self.crops = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.crops.append(batch[1])


def _pretrain(tmp_path, data_dir, method, *overrides, edit=lambda cfg: None):
    paths = [f"data.train_path={data_dir}", f"data.val_path={data_dir}"]
    extra = [*fast_overrides(tmp_path / "models"), *paths, *overrides]
    cfg = compose_config("pretrain", "fashion-mnist", method, extra)
    edit(cfg)
    recorder = BatchRecorder()
    trainer = pretrain(cfg, callbacks=[recorder])
    return trainer, recorder.crops


def test_the_fashion_mnist_recipe_trains_on_batched_crops(tmp_path, data_dir):
    trainer, crops = _pretrain(tmp_path, data_dir, "cjepa")
    assert isinstance(trainer.train_dataloader.dataset, RawBatches)
    assert len(crops) == 2
    for views in crops:
        (view,) = views
        assert view.shape == (8, 3, 28, 28) and view.dtype == torch.float32
    # the online classifiers were validated as usual
    assert "val_acc1" in trainer.callback_metrics
    assert "momentum_val_acc1" in trainer.callback_metrics


def _two_batchable_views(cfg):
    cfg.augmentations[0].num_crops = 2


@pytest.mark.parametrize("method", ["vicreg", "byol"])
def test_solo_methods_train_on_batched_crops(tmp_path, data_dir, method):
    trainer, crops = _pretrain(
        tmp_path,
        data_dir,
        method,
        "augmentations=ijepa.yaml",
        "data.batched_augmentations=True",
        edit=_two_batchable_views,
    )
    assert isinstance(trainer.train_dataloader.dataset, RawBatches)
    assert trainer.global_step == 2
    for first, second in crops:
        assert first.shape == second.shape == (8, 3, 28, 28)
        assert not torch.allclose(first, second)
