"""``data.batched_augmentations``: which augmentation pipelines run as whole-batch tensor ops (a
random resized crop, an optional flip, the normalisation), and the callback that turns each raw
training batch into its crops on the run's device, seeded per (seed, rank, epoch, batch).
"""

from typing import List, Optional, Sequence, Tuple

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from solo.data.pretrain_dataloader import build_transform_pipeline
from solo.utils.misc import omegaconf_select
from torch import nn
from torch.utils.data import Dataset
from torchvision import transforms

from solo_cjepa.batch_crop import INTERPOLATIONS, BatchRandomResizedCrop
from solo_cjepa.errors import note
from solo_cjepa.launch.data import fashion_mnist
from solo_cjepa.seeds import mix_seed

# The steps of solo's per-image pipeline that BatchRandomResizedCrop does for a whole batch.
BATCHABLE = (
    transforms.RandomResizedCrop,
    transforms.RandomHorizontalFlip,
    transforms.ToTensor,
    transforms.Normalize,
)
# The last counter of the crops' seed: the masks' seeds end in a view index (0 or 1), so the two
# never share a random stream.
AUGMENTATION_STREAM = 1_000


def _describe(step) -> str:
    if isinstance(step, transforms.RandomApply):
        inner = ", ".join(type(t).__name__ for t in step.transforms)
        return f"RandomApply([{inner}], p={step.p})"
    return type(step).__name__


def why_not_batchable(pipeline: transforms.Compose, image_size: Tuple[int, int]) -> Optional[str]:
    """``None`` if solo's per-image ``pipeline`` (``build_transform_pipeline``) of images of
    ``image_size`` has a batched equivalent, else why not. Batchable: a random resized crop
    (nearest, bilinear or bicubic) to a size no smaller than the images, so that no crop is
    downscaled (PIL's resize filters a downscale, ``grid_sample`` would alias it), an optional
    horizontal flip, ``ToTensor`` and ``Normalize``. Colour jitter, grayscale, blur, solarization,
    equalization and a plain resize (``rrc.enabled: False``) stay per image."""
    steps = pipeline.transforms
    others = [step for step in steps if not isinstance(step, BATCHABLE)]
    if others:
        return f"{_describe(others[0])} has no batched version"
    (crop,) = [step for step in steps if isinstance(step, transforms.RandomResizedCrop)]
    if crop.interpolation.value not in INTERPOLATIONS:
        return f"{crop.interpolation.value} interpolation has no batched version"
    if min(crop.size) < max(image_size):
        return (
            f"crop_size {min(crop.size)} is below the images' {max(image_size)} px (a downscale, "
            "which the batched crop does not filter)"
        )
    return None


def batch_crop(pipeline: transforms.Compose) -> BatchRandomResizedCrop:
    """The batched equivalent of a batchable ``pipeline`` (:func:`why_not_batchable`), with its
    crop size, scale, ratio, interpolation, flip probability and normalisation."""
    steps = {type(step): step for step in pipeline.transforms}
    crop, normalize = steps[transforms.RandomResizedCrop], steps[transforms.Normalize]
    flip = steps.get(transforms.RandomHorizontalFlip)
    return BatchRandomResizedCrop(
        crop.size[0],
        crop.scale,
        crop.ratio,
        normalize.mean,
        normalize.std,
        flip_prob=flip.p if flip is not None else 0.0,
        interpolation=crop.interpolation.value,
    )


class BatchAugmentation(pl.Callback):
    def __init__(self, crops: Sequence[BatchRandomResizedCrop], seed: int):
        """Replaces the raw uint8 images of each training batch (``batch[1]``, from
        :func:`~solo_cjepa.launch.data.raw_batches.raw_batch_loader`) by one crop per entry of
        ``crops`` (solo's crop order: pipeline by pipeline, ``num_crops`` each), on the device
        the batch was moved to, before the module's hooks and ``training_step`` see it.
        Validation batches are untouched."""
        self.crops = nn.ModuleList(crops)
        self.seed = int(seed)

    def augment(self, images: torch.Tensor, seed: int) -> List[torch.Tensor]:
        """The crops of ``images``, a pure function of ``seed`` (on a given device)."""
        self.crops.to(images.device)  # the normalisation constants; a no-op once there
        generator = torch.Generator(images.device).manual_seed(seed)
        return [crop(images, generator) for crop in self.crops]

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: list, batch_idx: int
    ) -> None:
        # Lightning passes this same list, after the transfer to the device, to the module's
        # hooks and training_step: replacing its item is how a callback transforms the batch.
        # Seeded like the masks, so a resumed run crops exactly as the uninterrupted one.
        seed = mix_seed(
            self.seed, trainer.global_rank, trainer.current_epoch, batch_idx, AUGMENTATION_STREAM
        )
        # the dtype Lightning gives solo's float crops (float64 for 64-true, half for 16-true)
        batch[1] = trainer.precision_plugin.convert_input(self.augment(batch[1], seed))


def batch_augmentation(cfg: DictConfig, dataset: Dataset) -> Optional[BatchAugmentation]:
    """The callback of ``data.batched_augmentations: True`` for the training ``dataset``, or
    ``None`` (solo's per-image pipeline) when it is off, when the dataset is not one array in
    memory (Fashion-MNIST is) or when an augmentation is not batchable; a note says why then."""
    if not omegaconf_select(cfg, "data.batched_augmentations", False):
        return None
    pipelines = [build_transform_pipeline(cfg.data.dataset, aug) for aug in cfg.augmentations]
    if not isinstance(dataset, fashion_mnist.FashionMNIST):
        reason = f"data.dataset={cfg.data.dataset!r} is read image by image, not held in memory"
    else:
        reasons = [why_not_batchable(p, dataset.images.shape[1:3]) for p in pipelines]
        reason = next(
            (f"augmentations[{i}]: {r}" for i, r in enumerate(reasons) if r is not None), None
        )
    if reason is not None:
        note(f"data.batched_augmentations: {reason}; augmenting image by image (solo's pipeline)")
        return None
    crops = [
        batch_crop(pipeline)
        for pipeline, aug in zip(pipelines, cfg.augmentations)
        for _ in range(aug.num_crops)
    ]
    return BatchAugmentation(crops, cfg.seed)
