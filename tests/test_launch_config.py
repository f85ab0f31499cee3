"""Bad input stops the launchers before training with one line naming the key and the allowed
values; the hardware keys of one yaml are normalised for a CPU."""

import pytest
import torch
from cjepa_helpers import compose_config, image_folder

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.data.loaders import pretrain_dataset
from solo_cjepa.launch.hardware import normalise_hardware, trainer_devices
from solo_cjepa.launch.run import build_method, prepare_linear_cfg, prepare_pretrain_cfg


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    flat = root / "flat"
    flat.mkdir()
    (flat / "image.jpg").write_bytes(b"")
    return {"labelled": image_folder(root / "labelled", num_classes=2, per_class=1), "flat": flat}


def _pretrain(config: str, overrides) -> None:
    dataset, name = config.split("/")
    cfg = prepare_pretrain_cfg(compose_config("pretrain", dataset, name, overrides))
    with torch.device("meta"):
        build_method(cfg)


PRETRAIN_CASES = [
    ("method=cjepa2", "method must be one of [", "'cjepa2'"),
    ("backbone.name=vit_gigantic", "backbone.name must be one of [", "'vit_gigantic'"),
    ("data.dataset=imagenet-100", "data.dataset must be one of [", "'imagenet100'"),
    ("data.format=tfrecord", "data.format must be one of ['image_folder', 'h5', 'dali']", ""),
    ("data.format=dali", "data.format=dali works for data.dataset in [", "'fashion-mnist'"),
    ("data.fraction=1.5", "data.fraction must be -1 (all data) or in (0, 1)", "1.5"),
    ("data.num_workers=-1", "data.num_workers must be an integer >= 0", ""),
    ("backbone.kwargs.patch_size=5", "backbone.kwargs.img_size (28) must be divisible", "[2, 4, 7"),
    ("augmentations.0.crop_size=32", "augmentations.0.crop_size (32) must equal", "(28)"),
    ("augmentations.0.rrc.crop_min_scale=0", "crop_max_scale must satisfy", "0 < min <= max"),
    ("augmentations.0.num_crops=3", "cjepa trains on 1 large crop", "3 large"),
    ("method_kwargs.target_scale=[0,0.2]", "method_kwargs: target_scale must be a pair", "<= 1.0"),
    ("method_kwargs.context_scale=[0.85,1.5]", "method_kwargs: context_scale must be a pair", ""),
    ("method_kwargs.num_targets=0", "method_kwargs.num_targets must be an integer >= 1", "got 0"),
    ("method_kwargs.min_keep=30", "fewer than min_keep=30", "lower min_keep"),
    ("method_kwargs.vicreg_weight=-1", "method_kwargs.vicreg_weight must be a number >= 0", ""),
    ("method_kwargs.cov_loss_weight=-0.5", "cov_loss_weight must be a number >= 0", "got -0.5"),
    ("method_kwargs.loss_type=l1", "method_kwargs.loss_type must be one of", "'smooth_l1'"),
    ("momentum.schedule=step", "momentum.schedule must be one of", "'linear'"),
    ("optimizer.name=adam_w", "optimizer.name must be one of [", "'adamw'"),
    ("optimizer.batch_size=0", "optimizer.batch_size must be an integer >= 1", ""),
    ("optimizer.lr=0", "optimizer.lr must be a number > 0", ""),
    ("scheduler.name=cosine", "scheduler.name must be one of ['warmup_cosine', 'step',", "'none']"),
    ("max_epochs=0", "max_epochs must be an integer >= 1", ""),
    ("precision=8", "precision must be one of [", "'bf16-mixed'"),
    ("accelerator=tpu", "accelerator must be one of ['auto', 'gpu', 'cuda', 'cpu']", ""),
    ("devices=0", "devices must be a count >= 1", "got 0"),
    ("+ddp_timeout_minutes=0", "ddp_timeout_minutes must be a number > 0", "got 0"),
    ("++health.collapse=always", "health.collapse must be one of ['off', 'warn', 'stop']", ""),
    ("++health.collapse=true", "health.collapse must be one of [", "got True"),
    ("++health.collapse_rank=0", "health.collapse_rank must be a number > 0", "got 0"),
    ("++health.collapse_steps=2.5", "health.collapse_steps must be an integer >= 1", "2.5"),
    ("resume_from_checkpoint=/nowhere.ckpt", "resume_from_checkpoint must be a .ckpt", ""),
]


@pytest.mark.parametrize("override,message,allowed", PRETRAIN_CASES)
def test_pretrain_bad_input(override, message, allowed):
    with pytest.raises(ConfigError) as err:
        _pretrain("fashion-mnist/cjepa", [override])
    text = str(err.value)
    assert message in text and allowed in text and "\n" not in text


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ([], {"collapse": "warn", "collapse_rank": 3.0, "collapse_steps": 5}),
        # a YAML `collapse: off` is read as False (YAML 1.1 booleans)
        (
            ["++health.collapse=false"],
            {"collapse": "off", "collapse_rank": 3.0, "collapse_steps": 5},
        ),
        (
            ["++health.collapse=stop", "++health.collapse_rank=2"],
            {"collapse": "stop", "collapse_rank": 2, "collapse_steps": 5},
        ),
    ],
)
def test_health_settings_and_their_defaults(overrides, expected):
    cfg = prepare_pretrain_cfg(compose_config("pretrain", "fashion-mnist", "cjepa", overrides))
    assert dict(cfg.health) == expected


def test_two_view_method_needs_two_crops():
    with pytest.raises(ConfigError, match="method='byol' trains on 2 large crops .* got 1"):
        _pretrain("fashion-mnist/byol", ["augmentations=ijepa.yaml"])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.train_path=/nowhere"], "data.train_path='/nowhere' is not a folder"),
        (["data.train_path={flat}"], "has no class sub-folders; for a flat folder"),
        (["data.train_path={labelled}", "data.val_path=/nowhere"], "data.val_path='/nowhere'"),
        # two classes cannot feed the momentum classifier's top-5 accuracy
        (["data.train_path={labelled}"], "momentum.classifier needs data.num_classes >= 5"),
    ],
)
def test_custom_data_paths(overrides, message, folders):
    overrides = [o.format(**folders) for o in overrides]
    with pytest.raises(ConfigError, match=message):
        _pretrain("custom/cjepa", overrides)


def test_missing_fashion_mnist_without_network(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    cfg = prepare_pretrain_cfg(
        compose_config("pretrain", "fashion-mnist", "cjepa", [f"data.train_path={tmp_path}"])
    )
    with pytest.raises(ConfigError, match="apt-get install dataset-fashion-mnist"):
        pretrain_dataset(cfg)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ([], "pretrained_feature_extractor must be a .ckpt/.pth/.pt/.pth.tar file or a run folder"),
        (["pretrained_feature_extractor={ckpt}", "pretrained_encoder=ema"],
         "pretrained_encoder must be one of ['context', 'target'], got 'ema'"),
        (["pretrained_feature_extractor={ckpt}", "data.augmentations.crop_size=32"],
         "data.augmentations.crop_size (32) must equal backbone.kwargs.img_size (28)"),
        (["pretrained_feature_extractor={ckpt}", "scheduler.name=cosine"],
         "scheduler.name must be one of ['reduce', 'warmup_cosine', 'step', 'exponential',"),
    ],
)  # fmt: skip
def test_linear_bad_input(overrides, message, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    overrides = [o.format(ckpt=ckpt) for o in overrides]
    with pytest.raises(ConfigError) as err:
        prepare_linear_cfg(compose_config("linear", "fashion-mnist", "cjepa", overrides))
    assert message in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU normalisation")
def test_gpu_yaml_runs_on_cpu():
    cfg = compose_config("pretrain", "imagenet-100", "cjepa")  # devices [0, 1], ddp, bf16
    normalise_hardware(cfg)
    assert cfg.accelerator == "cpu" and cfg.precision == "32-true"
    assert cfg.devices == [0] and trainer_devices(cfg) == 1  # GPU ids mean one CPU process
    assert cfg.strategy == "auto" and cfg.sync_batchnorm is False

    cfg = compose_config("pretrain", "fashion-mnist", "cjepa", ["strategy=null", "devices=auto"])
    normalise_hardware(cfg)
    assert cfg.devices == [0] and trainer_devices(cfg) == 1 and cfg.strategy == "auto"
    cfg = compose_config("pretrain", "fashion-mnist", "cjepa", ["devices='2'"])
    normalise_hardware(cfg)
    assert cfg.devices == [0, 1] and trainer_devices(cfg) == 2  # a count: CPU DDP (gloo)
    assert cfg.strategy == "ddp"
