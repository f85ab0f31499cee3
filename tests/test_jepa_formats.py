"""From and to other JEPA code: a run starts from an I-JEPA ``.pth.tar`` (built here from the
official key list, not from our map) or from our own checkpoint, linear evaluation reads it, and
``python -m solo_cjepa.export`` writes timm, Hugging Face and I-JEPA files that their own loaders
read back with our features."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cjepa_helpers import (
    REPO,
    compose_config,
    cpu_trainer,
    image_folder,
    pretrain_loader,
    tiny_vit_cfg,
)
from omegaconf import OmegaConf
from solo.methods.base import BaseMethod
from timm.models.vision_transformer import VisionTransformer

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.checkpoints.loading import load_pretrained_backbone
from solo_cjepa.launch.run import (
    build_linear_model,
    build_method,
    prepare_linear_cfg,
    prepare_pretrain_cfg,
)
from solo_cjepa.tools.export import main as export
from solo_cjepa.tools.export import tokens
from solo_cjepa.tools.offline_eval import eval_loaders, evaluate
from solo_cjepa.tools.offline_eval import main as evaluate_command
from solo_cjepa.vit import sincos_pos_embed

WIDTH, DEPTH, HEADS, PATCH, GRID = 64, 2, 2, 4, 8  # tiny_vit_cfg's vit_nano on 32 px
PRED_WIDTH, PRED_DEPTH = 48, 1
TOP_LEVEL = {"encoder", "predictor", "target_encoder", "opt", "scaler", "epoch", "loss"}
TOP_LEVEL |= {"batch_size", "world_size", "lr"}


def _block_shapes(prefix: str, width: int, hidden=None):
    hidden = hidden or 4 * width
    return {
        f"{prefix}.norm1.weight": [width],
        f"{prefix}.norm1.bias": [width],
        f"{prefix}.attn.qkv.weight": [3 * width, width],
        f"{prefix}.attn.qkv.bias": [3 * width],
        f"{prefix}.attn.proj.weight": [width, width],
        f"{prefix}.attn.proj.bias": [width],
        f"{prefix}.norm2.weight": [width],
        f"{prefix}.norm2.bias": [width],
        f"{prefix}.mlp.fc1.weight": [hidden, width],
        f"{prefix}.mlp.fc1.bias": [hidden],
        f"{prefix}.mlp.fc2.weight": [width, hidden],
        f"{prefix}.mlp.fc2.bias": [width],
    }


def encoder_shapes(width=WIDTH, depth=DEPTH, patch=PATCH, grid=GRID, hidden=None):
    """The key list of I-JEPA's VisionTransformer (src/models/vision_transformer.py)."""
    blocks = [_block_shapes(f"blocks.{i}", width, hidden) for i in range(depth)]
    return {
        "patch_embed.proj.weight": [width, 3, patch, patch],
        "patch_embed.proj.bias": [width],
        "pos_embed": [1, grid * grid, width],
        **{k: v for block in blocks for k, v in block.items()},
        "norm.weight": [width],
        "norm.bias": [width],
    }


def official_encoder(seed, width=WIDTH, depth=DEPTH, patch=PATCH, grid=GRID, pos_embed=None):
    """An encoder state dict as I-JEPA's VisionTransformer saves it under DDP."""
    shapes = encoder_shapes(width, depth, patch, grid)
    generator = torch.Generator().manual_seed(seed)
    state = {k: 0.1 * torch.randn(shape, generator=generator) for k, shape in shapes.items()}
    if pos_embed is not None:
        state["pos_embed"] = pos_embed
    return {f"module.{k}": v for k, v in state.items()}


def official_predictor(seed, depth=PRED_DEPTH, width=PRED_WIDTH):
    shapes = {
        "predictor_embed.weight": [width, WIDTH],
        "predictor_embed.bias": [width],
        "mask_token": [1, 1, width],
        "predictor_pos_embed": [1, GRID * GRID, width],
        **{
            k: v
            for i in range(depth)
            for k, v in _block_shapes(f"predictor_blocks.{i}", width).items()
        },
        "predictor_norm.weight": [width],
        "predictor_norm.bias": [width],
        "predictor_proj.weight": [WIDTH, width],
        "predictor_proj.bias": [WIDTH],
    }
    generator = torch.Generator().manual_seed(seed)
    return {f"module.{k}": torch.randn(s, generator=generator) for k, s in shapes.items()}


def official_checkpoint(path: Path, encoder=None, target=None, predictor=None) -> Path:
    torch.save(
        {
            "encoder": encoder or official_encoder(1),
            "predictor": predictor or official_predictor(2),
            "target_encoder": target or official_encoder(3),
            "opt": {"state": {}, "param_groups": []},
            "scaler": None,
            "epoch": 300,
            "loss": 0.1,
            "batch_size": 128,
            "world_size": 16,
            "lr": 0.001,
        },
        path,
    )
    return path


def stripped(state):
    return {k.removeprefix("module."): v for k, v in state.items()}


def timm_vit(state, img_size=32) -> VisionTransformer:
    """The independent reference: a plain timm ViT with the official weights, keys unmapped."""
    vit = VisionTransformer(
        img_size=img_size,
        patch_size=PATCH,
        embed_dim=WIDTH,
        depth=DEPTH,
        num_heads=HEADS,
        class_token=False,
        global_pool="avg",
        fc_norm=False,
        num_classes=0,
    )
    vit.load_state_dict(stripped(state), strict=True)
    return vit.eval()


def run_cfg(img_size=32, **kwargs):
    cfg = tiny_vit_cfg(**kwargs)
    cfg.backbone.kwargs.img_size = img_size
    return cfg


def _equal_states(module, reference):
    state = module.state_dict()
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(state[key], value), key


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A C-JEPA run folder (checkpoint and args.json) after two steps: EMA differs from context."""
    cfg = tiny_vit_cfg()
    model = build_method(cfg)
    trainer = cpu_trainer(max_steps=2)
    trainer.fit(model, pretrain_loader())
    folder = tmp_path_factory.mktemp("run")
    trainer.save_checkpoint(folder / "cjepa-ep=0.ckpt")
    (folder / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    return model.eval(), folder


def test_official_checkpoint_initialises_a_run(tmp_path, capsys):
    path = official_checkpoint(tmp_path / "IN1K-vit.pth.tar")
    official = torch.load(path, weights_only=True)
    cfg = run_cfg()
    cfg.init_from = str(path)
    model = build_method(cfg)
    lines = [line for line in capsys.readouterr().err.splitlines() if "init_from" in line]
    assert lines == [
        f"[solo-cjepa] init_from={path}: context encoder loaded; target encoder loaded; "
        "predictor loaded; optimizer and schedules start fresh"
    ]

    _equal_states(model.backbone, stripped(official["encoder"]))
    _equal_states(model.momentum_backbone, stripped(official["target_encoder"]))
    predictor = stripped(official["predictor"])
    assert torch.equal(model.predictor.embed.weight, predictor["predictor_embed.weight"])
    assert torch.equal(model.predictor.mask_token, predictor["mask_token"])
    assert torch.equal(
        model.predictor.blocks[0].attn.qkv.weight, predictor["predictor_blocks.0.attn.qkv.weight"]
    )
    assert torch.equal(model.predictor.proj.bias, predictor["predictor_proj.bias"])
    images = torch.randn(2, 3, 32, 32)
    reference = timm_vit(official["target_encoder"]).forward_features(images)
    assert torch.equal(tokens(model.momentum_backbone, images), reference)
    assert "starts fresh" not in capsys.readouterr().err


def test_linear_evaluation_reads_an_official_checkpoint(tmp_path):
    """main_linear.py's path: the yaml's vit_micro (128 wide, 4 blocks, 7x7 grid) loads the
    ``target_encoder`` of a .pth.tar strictly."""
    target = official_encoder(3, width=128, depth=4, grid=7)
    path = official_checkpoint(
        tmp_path / "vit.pth.tar",
        encoder=official_encoder(1, width=128, depth=4, grid=7),
        target=target,
    )
    overrides = [f"pretrained_feature_extractor={path}", "pretrained_encoder=target"]
    cfg = prepare_linear_cfg(compose_config("linear", "fashion-mnist", "cjepa", overrides))
    _equal_states(build_linear_model(cfg).backbone, stripped(target))


def test_ijepa_export_round_trip_is_exact(run, tmp_path, capsys):
    model, folder = run
    assert export([str(folder), "--format", "ijepa", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["max_feature_difference"] == 0.0
    path = Path(report["written"])
    official = torch.load(path, weights_only=True)
    assert set(official) == TOP_LEVEL and official["epoch"] == 1
    for entry in ("encoder", "predictor", "target_encoder"):
        assert all(k.startswith("module.") for k in official[entry])
    assert torch.equal(
        official["predictor"]["module.predictor_pos_embed"][0], sincos_pos_embed(PRED_WIDTH, (8, 8))
    )
    # the official init_opt's four groups: encoder and predictor weights, then their biases/norms
    sizes = [len(group["params"]) for group in official["opt"]["param_groups"]]
    assert sizes == [2 + 4 * DEPTH, 4 + 4 * PRED_DEPTH, 1 + 8 * DEPTH + 2, 1 + 8 * PRED_DEPTH + 3]

    cfg = run_cfg()
    cfg.init_from = str(path)
    again = build_method(cfg)
    for name in ("backbone", "momentum_backbone", "predictor"):
        _equal_states(getattr(again, name), getattr(model, name).state_dict())


def test_timm_export_gives_our_features(run, tmp_path, capsys):
    model, folder = run
    export([str(folder), "--format", "timm", "--out", str(tmp_path), "--encoder", "context"])
    call = capsys.readouterr().out.splitlines()[0]
    assert call.startswith("timm.create_model('vit_tiny_patch16_224', pretrained=True")
    rebuilt = runpy.run_path(str(tmp_path / "create_model.py"))["model"]
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt.forward_features(images), tokens(model.backbone, images))
        assert torch.equal(rebuilt(images), model.backbone(images))


def test_hf_export_gives_our_tokens(run, tmp_path, capsys):
    transformers = pytest.importorskip(
        "transformers", reason="pip install transformers (the hf extra)"
    )
    model, folder = run
    export([str(folder), "--format", "hf", "--out", str(tmp_path)])
    hf = transformers.IJepaModel.from_pretrained(str(tmp_path)).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = hf(pixel_values=images).last_hidden_state
    ours = tokens(model.momentum_backbone, images)
    assert (hidden - ours).abs().max() < 1e-5
    # query, key and value are the thirds of timm's fused qkv (transformers' conversion)
    qkv = model.momentum_backbone.blocks[1].attn.qkv.weight
    projections = [
        module.weight
        for name, module in hf.named_modules()
        if name.endswith(("query", "key", "value", "q_proj", "k_proj", "v_proj")) and ".1." in name
    ]
    assert torch.equal(torch.cat(projections), qkv)


def test_fixed_pos_embed_is_regenerated_for_another_image_size(run, tmp_path):
    model, folder = run
    export([str(folder), "--format", "ijepa", "--out", str(tmp_path)])
    cfg = run_cfg(img_size=48)  # 12x12 patches instead of 8x8
    cfg.init_from = str(next(tmp_path.glob("*.pth.tar")))
    bigger = build_method(cfg)
    assert torch.allclose(bigger.backbone.pos_embed[0], sincos_pos_embed(WIDTH, (12, 12)))
    assert torch.equal(bigger.momentum_backbone.norm.weight, model.momentum_backbone.norm.weight)


def test_learned_pos_embed_is_resampled_for_another_image_size(tmp_path):
    learned = torch.randn(1, GRID * GRID, WIDTH)
    path = official_checkpoint(
        tmp_path / "learned.pth.tar", target=official_encoder(3, pos_embed=learned)
    )
    cfg = run_cfg(img_size=48, fixed_pos_embed=False)
    cfg.init_from = str(path)
    model = build_method(cfg)
    grid = learned.reshape(1, GRID, GRID, WIDTH).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(12, 12), mode="bicubic", antialias=True)
    expected = expected.permute(0, 2, 3, 1).reshape(1, 144, WIDTH)
    assert torch.allclose(model.momentum_backbone.pos_embed, expected, atol=1e-6)


def test_predictor_of_another_depth_starts_fresh_with_one_line(tmp_path, capsys):
    path = official_checkpoint(tmp_path / "deep.pth.tar", predictor=official_predictor(2, depth=3))
    cfg = run_cfg()
    cfg.init_from = str(path)
    model = build_method(cfg)
    lines = [line for line in capsys.readouterr().err.splitlines() if "init_from" in line]
    assert len(lines) == 1 and "the predictor starts fresh" in lines[0]
    assert "2 unexpected (predictor_blocks.1" in lines[0] or "unexpected (blocks.1" in lines[0]
    _equal_states(model.backbone, stripped(official_encoder(1)))


@pytest.mark.parametrize(
    "encoder,message",
    [
        (dict(width=32), "reshaped (blocks.0.attn.proj.bias, blocks.0.attn.proj.weight"),
        (dict(patch=8, grid=4), "has patch size 8, the backbone 4: weights of another patch size"),
    ],
)
def test_checkpoint_of_another_architecture_is_refused(tmp_path, encoder, message):
    path = official_checkpoint(tmp_path / "other.pth.tar", encoder=official_encoder(1, **encoder))
    cfg = run_cfg()
    cfg.init_from = str(path)
    with pytest.raises(ConfigError, match="the context encoder in init_from=") as err:
        build_method(cfg)
    assert message in str(err.value)
    backbone = BaseMethod._BACKBONES["vit_nano"](
        "cjepa", img_size=32, patch_size=PATCH, class_token=False, global_pool="avg", fc_norm=False
    )
    with pytest.raises(ConfigError, match=r"does not fit backbone\.name|another patch size"):
        load_pretrained_backbone(backbone, str(path), "context")


def test_bad_file_gives_one_error_line(tmp_path):
    text = tmp_path / "notes.pth.tar"
    text.write_text("not a checkpoint\n")
    cfg = run_cfg()
    cfg.init_from = str(text)
    with pytest.raises(ConfigError, match="init_from=.* not a PyTorch checkpoint file"):
        build_method(cfg)
    overrides = [f"+init_from={tmp_path / 'notes.txt'}"]
    with pytest.raises(ConfigError, match="init_from must be a .ckpt/.pth/.pt/.pth.tar file"):
        prepare_pretrain_cfg(compose_config("pretrain", "fashion-mnist", "cjepa", overrides))
    result = subprocess.run(
        [sys.executable, "-m", "solo_cjepa.export", str(tmp_path), "--format", "timm"]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {str(tmp_path)!r} is a folder without .ckpt files"]


def test_offline_evaluation_of_an_official_checkpoint(tmp_path, capsys):
    folder = image_folder(tmp_path / "images", num_classes=2, per_class=12, size=32)
    overrides = [f"data.train_path={folder}", f"data.val_path={folder}", "data.num_workers=0"]
    overrides += ["backbone.name=vit_nano", "backbone.kwargs.img_size=32"]
    overrides += [f"backbone.kwargs.patch_size={PATCH}", "augmentations.0.crop_size=32"]
    context, target = official_encoder(1), official_encoder(3)
    path = official_checkpoint(tmp_path / "vit.pth.tar", encoder=context, target=target)
    evaluate_command([str(path), "--dataset", "custom", "--", *overrides])
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["encoder"] == "target" and scores["split"] == "test"

    cfg = prepare_pretrain_cfg(compose_config("pretrain", "custom", "ijepa", overrides))
    reference = evaluate(timm_vit(target), eval_loaders(cfg))
    assert {k: scores[k] for k in reference} == pytest.approx(reference)
    # both encoders in one call, each under its name
    evaluate_command([str(path), "--encoder", "both", "--dataset", "custom", "--", *overrides])
    both = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert both["target"] == pytest.approx(reference)
    assert both["context"] == pytest.approx(evaluate(timm_vit(context), eval_loaders(cfg)))


@pytest.mark.parametrize(
    "name,shapes",
    [
        ("vit_huge", encoder_shapes(width=1280, depth=32, patch=14, grid=16)),  # IN1K-vit.h.14
        ("vit_giant", encoder_shapes(width=1408, depth=40, patch=16, grid=14, hidden=6144)),
    ],
)
def test_released_ijepa_sizes_are_backbones(name, shapes):
    with torch.device("meta"):
        vit = BaseMethod._BACKBONES[name](
            "cjepa", class_token=False, global_pool="avg", fc_norm=False
        )
    assert {k: list(v.shape) for k, v in vit.state_dict().items()} == shapes
    assert vit.blocks[0].attn.num_heads == 16 and vit.norm.eps == 1e-6
