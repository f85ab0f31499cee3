"""solo-learn's DALI data modules, able to run on a machine without CUDA (``dali.device: cpu``).

solo builds every DALI pipeline with ``device_id=local_rank``, which DALI refuses without CUDA;
CPU-only pipelines need ``device_id=None``. With CUDA present solo's own setup runs unchanged.
A file DALI cannot decode stops the run with one line: DALI can neither skip it nor name it.
"""

import contextlib
from typing import Iterator, Optional

import torch
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from omegaconf import DictConfig
from solo.data.dali_dataloader import (
    ClassificationDALIDataModule,
    PretrainDALIDataModule,
    PretrainPipelineBuilder,
    PretrainWrapper,
    Wrapper,
    build_transform_pipeline_dali,
)
from solo.data.pretrain_dataloader import FullTransformPipeline, NCropAugmentation

from solo_cjepa.errors import ConfigError


def _cpu_pipeline(builder):
    """Builds a solo pipeline builder's pipeline in DALI's CPU-only mode."""
    pipeline = builder.pipeline(
        batch_size=builder.batch_size,
        num_threads=builder.num_threads,
        device_id=None,
        seed=builder.seed,
    )
    pipeline.build()
    return pipeline


class _CPUFallback:
    """Runs solo's ``setup`` where CUDA exists; elsewhere records the process placement as solo's
    does and builds CPU-only pipelines in ``_setup_cpu``."""

    def setup(self, stage: Optional[str] = None):
        if torch.cuda.is_available():
            return super().setup(stage)
        self.device_id, self.shard_id = self.trainer.local_rank, self.trainer.global_rank
        self.num_shards = self.trainer.world_size
        self.device = torch.device("cpu")
        self._setup_cpu()


class PretrainDALI(_CPUFallback, PretrainDALIDataModule):
    """``PretrainDALIDataModule`` that also works where CUDA is absent."""

    def _setup_cpu(self):
        builder = PretrainPipelineBuilder(
            self.train_data_path,
            batch_size=self.batch_size,
            device="cpu",
            transforms=self.transforms,
            device_id=self.device_id,  # only offsets the seed here
            shard_id=self.shard_id,
            num_shards=self.num_shards,
            num_threads=self.num_workers,
            no_labels=self.no_labels,
            encode_indexes_into_labels=self.encode_indexes_into_labels,
            data_fraction=self.data_fraction,
        )
        pipeline = _cpu_pipeline(builder)
        self.train_loader = PretrainWrapper(
            model_batch_size=self.batch_size,
            model_rank=self.device_id,
            model_device=self.device,
            dataset_size=pipeline.epoch_size("Reader"),
            conversion_map=builder.conversion_map if self.encode_indexes_into_labels else None,
            pipelines=pipeline,
            output_map=[f"large{i}" for i in range(self.num_large_crops)]
            + [f"small{i}" for i in range(self.num_small_crops)]
            + ["label"],
            reader_name="Reader",
            last_batch_policy=LastBatchPolicy.DROP,
            auto_reset=True,
        )


class ClassificationDALI(_CPUFallback, ClassificationDALIDataModule):
    """``ClassificationDALIDataModule`` that also works where CUDA is absent."""

    def _setup_cpu(self):
        loaders = []
        for path, validation in ((self.train_data_path, False), (self.val_data_path, True)):
            builder = self.pipeline_class(
                path,
                validation=validation,
                batch_size=self.batch_size,
                device="cpu",
                device_id=self.device_id,
                shard_id=self.shard_id,
                num_shards=self.num_shards,
                num_threads=self.num_workers,
                data_fraction=-1.0 if validation else self.data_fraction,
            )
            pipeline = _cpu_pipeline(builder)
            loaders.append(
                Wrapper(
                    pipelines=pipeline,
                    dataset_size=pipeline.epoch_size("Reader"),
                    output_map=["x", "label"],
                    reader_name="Reader",
                    # every validation image counts; training drops the ragged last batch
                    last_batch_policy=LastBatchPolicy.PARTIAL
                    if validation
                    else LastBatchPolicy.DROP,
                    auto_reset=True,
                )
            )
        self.train_loader, self.val_loader = loaders


def _module_kwargs(cfg: DictConfig) -> dict:
    """What solo's two DALI data modules read from a parsed cfg alike."""
    return dict(
        dataset=cfg.data.dataset,
        train_data_path=cfg.data.train_path,
        num_workers=cfg.data.num_workers,
        batch_size=cfg.optimizer.batch_size,
        data_fraction=cfg.data.fraction,
        dali_device=cfg.dali.device,
    )


def pretrain_datamodule(cfg: DictConfig) -> PretrainDALI:
    """The pretraining data of a parsed cfg with ``data.format: dali``, as solo-learn builds it."""
    transform = FullTransformPipeline(
        [
            NCropAugmentation(
                build_transform_pipeline_dali(cfg.data.dataset, aug, dali_device=cfg.dali.device),
                aug.num_crops,
            )
            for aug in cfg.augmentations
        ]
    )
    return PretrainDALI(
        transforms=transform,
        num_large_crops=cfg.data.num_large_crops,
        num_small_crops=cfg.data.num_small_crops,
        no_labels=cfg.data.no_labels,
        encode_indexes_into_labels=cfg.dali.encode_indexes_into_labels,
        **_module_kwargs(cfg),
    )


def classification_datamodule(cfg: DictConfig) -> ClassificationDALI:
    """The linear-evaluation data of a parsed cfg with ``data.format: dali``."""
    return ClassificationDALI(val_data_path=cfg.data.val_path, **_module_kwargs(cfg))


@contextlib.contextmanager
def dali_read_errors(cfg: DictConfig) -> Iterator[None]:
    """Turns DALI's pipeline failure (a file it cannot decode, mid-epoch) into a ConfigError."""
    try:
        yield
    except RuntimeError as err:
        if "Critical error in pipeline" not in str(err):
            raise
        cause = " ".join(str(err).split("encountered:")[-1].split("Current pipeline")[0].split())
        raise ConfigError(
            f"data.format=dali: DALI failed to read an image under data.train_path="
            f"{cfg.data.train_path!r} ({cause}); DALI cannot name or skip the file: run with "
            "data.format=image_folder, which names unreadable images and skips them"
        ) from None
