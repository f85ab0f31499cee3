"""``python -m solo_cjepa.attention``: the recomputed last-layer attention is timm's, the maps
are per-image grids in [0, 1], and the command draws a PNG from a checkpoint and its args.json."""

import json

import pytest
import torch
from cjepa_helpers import IMG_SIZE, image_folder, tiny_vit_cfg
from omegaconf import OmegaConf
from PIL import Image

from solo_cjepa.method import CJEPA
from solo_cjepa.tools.attention_maps import attention_maps, last_layer_attention, main
from solo_cjepa.vit import embed_patches, vit_nano


def token_vit():
    torch.manual_seed(0)
    vit = vit_nano(
        img_size=IMG_SIZE, patch_size=4, class_token=False, global_pool="avg", fc_norm=False
    )
    return vit.eval()


def test_recomputed_attention_reproduces_the_last_block():
    vit = token_vit()
    images = torch.randn(2, 3, IMG_SIZE, IMG_SIZE)
    weights = last_layer_attention(vit, images)
    assert weights.shape == (2, 2, 64, 64)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 64))

    with torch.no_grad():
        x = vit.blocks[:-1](vit.norm_pre(embed_patches(vit, images)))
        block = vit.blocks[-1]
        h = block.norm1(x)
        v = block.attn.qkv(h).reshape(2, 64, 3, 2, 32).permute(2, 0, 3, 1, 4)[2]
        ours = block.attn.proj((weights @ v).transpose(1, 2).reshape(2, 64, 64))
        torch.testing.assert_close(ours, block.attn(h), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("query", ["mean", "center"])
def test_maps_are_patch_grids_scaled_per_image(query):
    maps = attention_maps(token_vit(), torch.randn(3, 3, IMG_SIZE, IMG_SIZE), query)
    assert maps.shape == (3, 8, 8)
    assert torch.allclose(maps.flatten(1).min(1).values, torch.zeros(3))
    assert torch.allclose(maps.flatten(1).max(1).values, torch.ones(3))


def test_command_draws_target_and_context_maps_of_a_checkpoint(tmp_path):
    cfg = tiny_vit_cfg(num_classes=5)
    cfg.data.update(
        train_path=str(image_folder(tmp_path / "train", num_classes=5, per_class=2, size=IMG_SIZE)),
        val_path=str(image_folder(tmp_path / "val", num_classes=5, per_class=2, size=IMG_SIZE)),
        format="image_folder",
        num_workers=0,
    )
    cfg.augmentations = [{"crop_size": IMG_SIZE, "mean": [0.5] * 3, "std": [0.25] * 3}]
    model = CJEPA(cfg)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"state_dict": model.state_dict()}, run / "cjepa-ep=0.ckpt")
    (run / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))

    out = tmp_path / "maps" / "attention.png"
    assert main([str(run), "--images", "4", "--out", str(out), "--query", "center"]) == 0
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] > image.size[1]  # 4 columns, 3 rows
    with pytest.raises(SystemExit) as stop:
        main([str(run), "--images", "99", "--out", str(out)])
    assert stop.value.code == 2
