"""Linear evaluation loads exactly the chosen encoder of a C-JEPA checkpoint, refuses any
mismatch, and our checkpoints also suit solo-learn's own ``main_linear.py`` loader."""

import pytest
import torch
from cjepa_helpers import cpu_trainer, pretrain_loader, tiny_vit_cfg
from solo.methods import METHODS
from solo.methods.base import BaseMethod

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.checkpoints.loading import load_pretrained_backbone


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A C-JEPA checkpoint after two optimiser steps (so the EMA target differs from the context
    encoder), written by Lightning as the launcher's Checkpointer does."""
    cfg = tiny_vit_cfg()
    model = METHODS["cjepa"](cfg)
    trainer = cpu_trainer(max_steps=2)
    trainer.fit(model, pretrain_loader())
    path = tmp_path_factory.mktemp("ckpt") / "cjepa.ckpt"
    trainer.save_checkpoint(path)
    return cfg, model, str(path)


def _backbone(cfg, **kwargs):
    kwargs = {**cfg.backbone.kwargs, **kwargs}
    return BaseMethod._BACKBONES[cfg.backbone.name]("cjepa", **kwargs)


@pytest.mark.parametrize(
    "encoder,source", [("context", "backbone"), ("target", "momentum_backbone")]
)
def test_loads_the_chosen_encoder(trained, encoder, source):
    cfg, model, path = trained
    backbone = _backbone(cfg)
    load_pretrained_backbone(backbone, path, encoder)
    expected = getattr(model, source).state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert not torch.equal(
        model.backbone.blocks[0].attn.qkv.weight, model.momentum_backbone.blocks[0].attn.qkv.weight
    )


@pytest.mark.parametrize(
    "kwargs,problem",
    [
        ({"class_token": True}, "1 missing (cls_token)"),
        ({"patch_size": 8}, "has patch size 4, the backbone 8"),
        ({"global_pool": "avg", "fc_norm": True}, "2 missing (fc_norm.bias, fc_norm.weight)"),
    ],
)
def test_mismatched_backbone_settings_stop_the_run(trained, kwargs, problem):
    cfg, _, path = trained
    with pytest.raises(ConfigError, match="does not fit backbone.name|another patch size") as err:
        load_pretrained_backbone(_backbone(cfg, **kwargs), path)
    assert problem in str(err.value)


def test_unexpected_and_absent_weights_stop_the_run(trained, tmp_path):
    cfg, _, path = trained
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    extra = tmp_path / "extra.ckpt"
    torch.save({"state_dict": {**state, "backbone.head.weight": torch.zeros(1)}}, extra)
    with pytest.raises(ConfigError, match=r"1 unexpected \(head.weight\)"):
        load_pretrained_backbone(_backbone(cfg), str(extra))

    no_ema = tmp_path / "no_ema.ckpt"  # e.g. a VICReg checkpoint: no target encoder
    torch.save(
        {"state_dict": {k: v for k, v in state.items() if k.startswith("backbone.")}}, no_ema
    )
    with pytest.raises(ConfigError, match=r"no momentum_backbone.\* \(I-JEPA: target_encoder\)"):
        load_pretrained_backbone(_backbone(cfg), str(no_ema), "target")


def test_checkpoint_suits_solo_learns_linear_loader(trained):
    """solo's main_linear.py keeps the keys containing "backbone" with "backbone." removed, renames
    keys containing "encoder" (legacy checkpoints) and loads with strict=False: every backbone
    weight must come through that path, and no key may look legacy."""
    cfg, model, path = trained
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert not [k for k in state if "encoder" in k]
    kept = {k.replace("backbone.", ""): v for k, v in state.items() if "backbone" in k}
    backbone = _backbone(cfg)
    result = backbone.load_state_dict(kept, strict=False)
    assert result.missing_keys == []
    assert torch.equal(backbone.pos_embed, model.backbone.pos_embed)
