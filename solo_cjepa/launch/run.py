"""The run sequences behind ``main_pretrain.py`` and ``main_linear.py``: solo-learn's launchers
expressed through its public API, plus hardware normalisation, input checks, Fashion-MNIST,
DALI on CPU, a CSV logger when W&B is off, exact resume and strict linear-evaluation loading.
"""

import inspect
import os
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from lightning.pytorch import (
    Callback,
    LightningDataModule,
    LightningModule,
    Trainer,
    seed_everything,
)
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf
from solo.args.linear import parse_cfg as parse_linear_cfg
from solo.args.pretrain import parse_cfg as parse_pretrain_cfg
from solo.data.pretrain_dataloader import prepare_dataloader
from solo.methods import METHODS
from solo.methods.base import BaseMethod
from solo.methods.linear import LinearModel
from solo.utils.auto_resumer import AutoResumer
from solo.utils.checkpointer import Checkpointer
from solo.utils.misc import make_contiguous, omegaconf_select
from torch import nn
from torch.utils.data import DataLoader

import solo_cjepa  # noqa: F401  (registers cjepa and the small ViTs)
from solo_cjepa.errors import ConfigError, note
from solo_cjepa.launch.checkpoints.atomic_checkpoint_io import AtomicCheckpointIO
from solo_cjepa.launch.checkpoints.loading import (
    encoder_of,
    initialise_from,
    load_pretrained_backbone,
    read_checkpoint,
)
from solo_cjepa.launch.config_checks import check_linear_cfg, check_pretrain_cfg
from solo_cjepa.launch.data.batch_augmentation import batch_augmentation
from solo_cjepa.launch.data.loaders import (
    linear_loaders,
    pretrain_dataset,
    pretrain_val_loader,
    require_full_batch,
)
from solo_cjepa.launch.data.raw_batches import RawBatches, raw_batch_loader
from solo_cjepa.launch.epoch_metrics import ReduceEpochMetrics
from solo_cjepa.launch.epoch_seed import EpochSeed
from solo_cjepa.launch.hang_guard import stalled_collectives, strategy
from solo_cjepa.launch.hardware import normalise_hardware, trainer_devices
from solo_cjepa.launch.run_health import RunHealth
from solo_cjepa.launch.run_report import ProgressBar, RunReport, linear_command, quiet_warnings
from solo_cjepa.launch.run_scaled_schedules import momentum_scaling, scale_warmup
from solo_cjepa.launch.unlabelled import without_online_classifier


def _prepare(cfg: DictConfig, check: Callable, parse: Callable) -> DictConfig:
    quiet_warnings()
    OmegaConf.set_struct(cfg, False)
    normalise_hardware(cfg)
    check(cfg)
    return parse(cfg)


def prepare_pretrain_cfg(cfg: DictConfig) -> DictConfig:
    """Normalises, checks and parses (solo's ``parse_cfg``) a composed pretraining cfg, its
    warm-up capped at a share of the run (:func:`scale_warmup`)."""
    cfg = _prepare(cfg, check_pretrain_cfg, parse_pretrain_cfg)
    scale_warmup(cfg)
    return cfg


def build_method(cfg: DictConfig) -> LightningModule:
    """Instantiates ``METHODS[cfg.method]``, without its online classifier on unlabelled data;
    the method's own setting checks become ConfigErrors. With ``init_from`` (a run folder, our
    ``.ckpt`` or an I-JEPA ``.pth.tar``) its encoders and predictor start from that checkpoint;
    optimizer and schedules start fresh."""
    method = METHODS[cfg.method]
    if omegaconf_select(cfg, "data.no_labels", False):
        method = without_online_classifier(method)
    try:
        model = method(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    init_from = omegaconf_select(cfg, "init_from", None)
    if init_from is not None:
        initialise_from(model, init_from)
    return model


def untrained_encoder(cfg: DictConfig) -> nn.Module:
    """The encoder a run of ``cfg`` starts from: its method built after seeding with ``cfg.seed``,
    as :func:`pretrain` builds it (a momentum method's target starts as a copy of it)."""
    seed_everything(cfg.seed)
    return encoder_of(build_method(cfg), "context")


def _new_run_name(logdir: str) -> str:
    existing = set(os.listdir(logdir)) if os.path.isdir(logdir) else set()
    while (version := f"csv-{Checkpointer.random_string()}") in existing:
        pass
    return version


def _logger(
    cfg: DictConfig, model: LightningModule, logdir: str, wandb_run_id: Optional[str]
) -> Logger:
    """W&B as in solo-learn, or else a CSV file in the run's checkpoint folder
    (``<checkpoint.dir>/<method or linear>/<version>/metrics.csv``)."""
    if cfg.wandb.enabled:
        logger = WandbLogger(
            name=cfg.name,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            offline=cfg.wandb.offline,
            resume="allow" if wandb_run_id else None,
            id=wandb_run_id,
        )
        logger.watch(model, log="gradients", log_freq=100)
    else:
        logger = CSVLogger(save_dir=logdir, name="", version=_new_run_name(logdir))
    logger.log_hyperparams(OmegaConf.to_container(cfg))
    return logger


def _resume_point(cfg: DictConfig, logdir: str) -> Tuple[Optional[str], Optional[str]]:
    """Checkpoint to resume from (``resume_from_checkpoint``, else the newest matching run in
    ``logdir`` when ``auto_resume.enabled``) and its W&B run id."""
    if cfg.resume_from_checkpoint is not None:
        return cfg.resume_from_checkpoint, None
    if cfg.auto_resume.enabled:
        resumer = AutoResumer(checkpoint_dir=logdir, max_hours=cfg.auto_resume.max_hours)
        try:
            ckpt_path, wandb_run_id = resumer.find_checkpoint(cfg)
        except (OSError, ValueError) as err:  # a run folder without a readable args.json
            raise ConfigError(
                f"auto_resume.enabled=True cannot read the runs under {logdir!r} "
                f"({type(err).__name__}: {err}); move folders not written by a run elsewhere"
            ) from None
        if ckpt_path is not None:
            read_checkpoint(ckpt_path, "auto_resume", resumable=True)
            note(f"resuming from {ckpt_path}")
        return ckpt_path, wandb_run_id
    return None, None


def _fit(
    cfg: DictConfig,
    model: LightningModule,
    logdir: str,
    callbacks: Sequence[Callback],
    train: Union[DataLoader, LightningDataModule],
    val_loader: Optional[DataLoader],
    evaluate_with: Optional[str] = None,
) -> Trainer:
    """Adds checkpointing (after ``callbacks``: :class:`RunHealth` checks before each save),
    logging, resume and reporting to ``model`` and trains it on ``train``
    (a loader or a DALI data module), validating on ``val_loader``; the closing summary gives
    ``evaluate_with`` as the command that evaluates the checkpoint."""
    ckpt_path, wandb_run_id = _resume_point(cfg, logdir)
    report = RunReport(evaluate_with)
    callbacks: List[Callback] = [EpochSeed(cfg.seed), report, *callbacks, ReduceEpochMetrics()]
    if omegaconf_select(cfg, "enable_progress_bar", True):
        callbacks.append(ProgressBar())
    if cfg.checkpoint.enabled:
        callbacks.append(
            Checkpointer(
                cfg,
                logdir=logdir,
                frequency=cfg.checkpoint.frequency,
                keep_prev=cfg.checkpoint.keep_prev,
            )
        )
    logger = _logger(cfg, model, logdir, wandb_run_id)
    callbacks.append(LearningRateMonitor(logging_interval="step"))

    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg).items() if k in valid}
    kwargs.update(
        devices=trainer_devices(cfg),
        strategy=strategy(cfg),
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        plugins=[AtomicCheckpointIO()],
    )
    trainer = Trainer(**kwargs)
    if isinstance(train, LightningDataModule):
        if val_loader is not None:
            # solo-learn's choice: validate DALI runs with torchvision, sparing GPU memory
            train.val_dataloader = lambda: val_loader
        from solo_cjepa.launch.data.dali import dali_read_errors

        with stalled_collectives(cfg, trainer), dali_read_errors(cfg):
            trainer.fit(model, datamodule=train, ckpt_path=ckpt_path)
    else:
        with stalled_collectives(cfg, trainer):
            trainer.fit(model, train, val_loader, ckpt_path=ckpt_path)
    if trainer.global_step == 0 and not trainer.interrupted:
        # the check before training cannot count DALI's files; this one catches any format
        raise ConfigError(
            f"no training step ran: each of the {trainer.world_size} process(es) got fewer "
            f"than optimizer.batch_size={cfg.optimizer.batch_size} training images"
        )
    metrics = dict(trainer.callback_metrics)  # read on every process: a read can reduce
    if trainer.is_global_zero:
        report.summary(trainer, metrics)
    return trainer


def _channels_last(cfg: DictConfig, model: LightningModule) -> LightningModule:
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _train_loader(cfg: DictConfig) -> Tuple[DataLoader, List[Callback]]:
    """solo's loader of crops augmented image by image, or, with ``data.batched_augmentations``
    where it applies, a loader of raw batches and the callback that crops them on the device."""
    dataset = pretrain_dataset(cfg)
    require_full_batch(cfg, len(dataset))
    augmentation = batch_augmentation(cfg, dataset)
    if cfg.debug_augmentations:
        shown = dataset.transform if augmentation is None else augmentation.crops
        print("Transforms:", shown, sep="\n")
    if augmentation is None:
        batch_size, workers = cfg.optimizer.batch_size, cfg.data.num_workers
        return prepare_dataloader(dataset, batch_size=batch_size, num_workers=workers), []
    loader = raw_batch_loader(RawBatches(dataset.images, dataset.targets), cfg.optimizer.batch_size)
    return loader, [augmentation]


def pretrain(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> Trainer:
    """Pretrains ``cfg.method`` as solo-learn's ``main_pretrain.py`` does; returns the trainer."""
    cfg = prepare_pretrain_cfg(cfg)
    seed_everything(cfg.seed)
    model = _channels_last(cfg, build_method(cfg))
    val_loader = pretrain_val_loader(cfg)

    if cfg.data.format == "dali":
        from solo_cjepa.launch.data.dali import pretrain_datamodule

        train, data_callbacks = pretrain_datamodule(cfg), []
    else:
        train, data_callbacks = _train_loader(cfg)

    if omegaconf_select(cfg, "auto_umap.enabled", False):
        from solo.utils.auto_umap import AutoUMAP

        umap_dir = os.path.join(cfg.auto_umap.dir, cfg.method)
        callbacks = [
            *callbacks,
            AutoUMAP(cfg.name, logdir=umap_dir, frequency=cfg.auto_umap.frequency),
        ]
    callbacks = [*data_callbacks, *momentum_scaling(cfg), *callbacks, RunHealth.from_cfg(cfg)]
    logdir = os.path.join(cfg.checkpoint.dir, cfg.method)
    evaluate_with = linear_command(cfg.data.dataset, cfg.data.holdout)
    return _fit(cfg, model, logdir, callbacks, train, val_loader, evaluate_with)


def _linear_backbone(cfg: DictConfig) -> nn.Module:
    backbone = BaseMethod._BACKBONES[cfg.backbone.name](
        method=cfg.pretrain_method, **cfg.backbone.kwargs
    )
    if cfg.backbone.name.startswith("resnet"):
        # the surgery BaseMethod applies when pretraining, so the weights fit
        backbone.fc = nn.Identity()
        if cfg.data.dataset in ("cifar10", "cifar100"):
            backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
            backbone.maxpool = nn.Identity()
    load_pretrained_backbone(backbone, cfg.pretrained_feature_extractor, cfg.pretrained_encoder)
    return backbone


def _linear_loss(cfg: DictConfig):
    """Loss and optional mixup/cutmix of solo-learn's linear evaluation and fine-tuning."""
    from timm.data.mixup import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            label_smoothing=cfg.label_smoothing,
            num_classes=cfg.data.num_classes,
        )
        return SoftTargetCrossEntropy(), mixup  # the mixup targets carry the smoothing
    if cfg.label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing), None
    return nn.CrossEntropyLoss(), None


def prepare_linear_cfg(cfg: DictConfig) -> DictConfig:
    """Normalises, checks and parses (solo's linear ``parse_cfg``) a composed linear cfg."""
    return _prepare(cfg, check_linear_cfg, parse_linear_cfg)


def build_linear_model(cfg: DictConfig) -> LinearModel:
    """solo's ``LinearModel`` around the strictly loaded pretrained encoder."""
    loss_func, mixup = _linear_loss(cfg)
    return LinearModel(_linear_backbone(cfg), loss_func=loss_func, mixup_func=mixup, cfg=cfg)


def linear(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> Trainer:
    """Linear evaluation (or fine-tuning) of a pretrained encoder, as solo-learn's
    ``main_linear.py``, but with strict loading and ``pretrained_encoder: context | target``."""
    cfg = prepare_linear_cfg(cfg)
    seed_everything(cfg.seed)
    model = _channels_last(cfg, build_linear_model(cfg))
    train, val_loader = linear_loaders(cfg)
    if cfg.data.format == "dali":
        from solo_cjepa.launch.data.dali import classification_datamodule

        train = classification_datamodule(cfg)
    logdir = os.path.join(cfg.checkpoint.dir, "linear")
    return _fit(cfg, model, logdir, [*callbacks, RunHealth()], train, val_loader)
