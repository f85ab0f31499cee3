"""Every shipped yaml composes, passes the launcher's checks and instantiates its method (or linear
model), and the method comparison they promise is like for like.

Models are built on PyTorch's meta device: every constructor check and every shape is exercised,
without the seconds a ViT-B takes to initialise on a CPU (the launcher tests train real weights).
"""

import pytest
import torch
from cjepa_helpers import REPO, compose_config, image_folder
from omegaconf import OmegaConf
from solo.methods import METHODS
from solo.methods.linear import LinearModel

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.run import (
    build_linear_model,
    build_method,
    prepare_linear_cfg,
    prepare_pretrain_cfg,
)

DATASETS = ("fashion-mnist", "cifar", "imagenet-100", "imagenet", "custom")
PRETRAIN = [
    (dataset, path.stem)
    for dataset in DATASETS
    for path in sorted((REPO / "scripts" / "pretrain" / dataset).glob("*.yaml"))
]

try:
    import nvidia.dali  # noqa: F401

    HAS_DALI = True
except ImportError:
    HAS_DALI = False


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # five classes: the cjepa yamls' momentum classifier reports top-5 accuracy
    return image_folder(tmp_path_factory.mktemp("images"), num_classes=5, per_class=1)


def _data_overrides(dataset: str, folder) -> list:
    if dataset in ("imagenet-100", "imagenet", "custom"):
        return [f"data.train_path={folder}", f"data.val_path={folder}"]
    return []


def test_every_dataset_ships_the_four_methods_and_a_linear_config():
    for dataset in DATASETS:
        names = {name for d, name in PRETRAIN if d == dataset}
        assert {"cjepa", "ijepa", "byol", "vicreg"} <= names, dataset
        assert (REPO / "scripts" / "linear" / dataset / "cjepa.yaml").is_file()
        for group in ("augmentations", "wandb"):
            assert (REPO / "scripts" / "pretrain" / dataset / group).is_dir()
    assert {d for d, name in PRETRAIN if name == "cjepa-dali"} == {"imagenet-100", "imagenet"}


@pytest.mark.parametrize("dataset,name", PRETRAIN)
def test_pretrain_yaml_instantiates_its_method(dataset, name, folder):
    cfg = compose_config("pretrain", dataset, name, _data_overrides(dataset, folder))
    if cfg.data.format == "dali" and not HAS_DALI:
        with pytest.raises(ConfigError, match="pip install nvidia-dali"):
            prepare_pretrain_cfg(cfg)
        return
    cfg = prepare_pretrain_cfg(cfg)
    assert not cfg.wandb.enabled  # offline by default; W&B is the wandb=private group
    size = cfg.augmentations[0].crop_size
    with torch.device("meta"):
        model = build_method(cfg)
        feats = model.eval()(torch.empty(2, 3, size, size))["feats"]
    assert type(model) is METHODS[cfg.method]
    assert feats.shape == (2, model.features_dim)


def _plain(cfg, *drop):
    cfg = OmegaConf.to_container(cfg)
    for key in drop:
        parent, _, leaf = key.rpartition(".")
        node = cfg
        for part in filter(None, parent.split(".")):
            node = node[part]
        node.pop(leaf, None)
    return cfg


@pytest.mark.parametrize("dataset", DATASETS)
def test_ijepa_is_cjepa_without_vicreg(dataset):
    cjepa = compose_config("pretrain", dataset, "cjepa")
    ijepa = compose_config("pretrain", dataset, "ijepa")
    assert cjepa.method_kwargs.vicreg_weight > 0 and ijepa.method_kwargs.vicreg_weight == 0
    drop = ("name", "method_kwargs.vicreg_weight")
    assert _plain(cjepa, *drop) == _plain(ijepa, *drop)


@pytest.mark.parametrize("dataset", DATASETS)
def test_baselines_share_backbone_data_and_schedule(dataset):
    cjepa = compose_config("pretrain", dataset, "cjepa")
    for name in ("byol", "vicreg"):
        other = compose_config("pretrain", dataset, name)
        for key in ("backbone", "data", "optimizer", "scheduler", "max_epochs", "devices"):
            assert other[key] == cjepa[key], (name, key)
        assert len(other.augmentations) * other.augmentations[0].num_crops >= 2
        assert any(aug.color_jitter.prob > 0 for aug in other.augmentations)  # solo's two views
    # I-JEPA's augmentation: one random resized crop of 30-100 %, no colour, no flip
    (aug,) = cjepa.augmentations
    assert (aug.rrc.crop_min_scale, aug.rrc.crop_max_scale, aug.num_crops) == (0.3, 1.0, 1)
    assert aug.color_jitter.prob == aug.grayscale.prob == aug.horizontal_flip.prob == 0
    assert cjepa.momentum.classifier


@pytest.mark.filterwarnings("ignore:.*meta parameter")  # copying into meta tensors is a no-op
@pytest.mark.parametrize("dataset", DATASETS)
def test_linear_yaml_loads_a_pretrained_backbone(dataset, folder, tmp_path):
    pretrain_cfg = prepare_pretrain_cfg(
        compose_config("pretrain", dataset, "cjepa", _data_overrides(dataset, folder))
    )
    with torch.device("meta"):
        pretrained = build_method(pretrain_cfg)
    # one stored zero per tensor, broadcast to its shape: a ViT-B checkpoint of a few kB
    state = {k: torch.zeros(()).expand(v.shape) for k, v in pretrained.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "run.ckpt")

    overrides = [f"pretrained_feature_extractor={tmp_path}", *_data_overrides(dataset, folder)]
    cfg = prepare_linear_cfg(compose_config("linear", dataset, "cjepa", overrides))
    assert cfg.data.augmentations.crop_size == pretrain_cfg.augmentations[0].crop_size
    for encoder in ("context", "target"):  # strict loading: both encoders fit the linear backbone
        cfg.pretrained_encoder = encoder
        with torch.device("meta"):
            model = build_linear_model(cfg)
        assert isinstance(model, LinearModel)


def test_old_vicreg_weight_names_are_read_with_a_note(capsys):
    cfg = compose_config("pretrain", "fashion-mnist", "cjepa")
    OmegaConf.set_struct(cfg, False)
    kwargs = cfg.method_kwargs
    for term in ("sim", "var", "cov"):
        del kwargs[f"{term}_loss_weight"]
    kwargs.sim_weight, kwargs.var_weight, kwargs.cov_weight = 3.0, 4.0, 5.0
    model = build_method(prepare_pretrain_cfg(cfg))
    assert model.vicreg_weights == {
        "sim_loss_weight": 3.0,
        "var_loss_weight": 4.0,
        "cov_loss_weight": 5.0,
    }
    assert "method_kwargs.sim_weight is deprecated" in capsys.readouterr().err
