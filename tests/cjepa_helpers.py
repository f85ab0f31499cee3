"""Shared builders for the tests: a small C-JEPA cfg, fake-image loaders through solo's own
transform pipeline, and a CPU trainer. (Not named ``tests.*``: solo-learn's wheel ships a
top-level ``tests`` package.)"""

from typing import List, Optional

import torch
from lightning.pytorch import Trainer
from omegaconf import OmegaConf
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
