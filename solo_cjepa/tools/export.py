"""``python -m solo_cjepa.export``: a pretraining run's encoder for other code. ``timm``:
safetensors plus the ``timm.create_model`` call that rebuilds it; ``hf``: a ``transformers``
``IJepaModel`` folder; ``ijepa``: facebookresearch/ijepa's ``.pth.tar`` (both encoders and the
predictor). Every export is read back by its consumer's own loader and compared with our tokens.
"""

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import timm
import torch
from omegaconf import DictConfig
from timm.models import VisionTransformer
from torch import nn

from solo_cjepa.errors import ConfigError, exit_on_config_error, require
from solo_cjepa.launch.checkpoints import ijepa_format
from solo_cjepa.launch.checkpoints.loading import (
    ENCODER_ATTRIBUTES,
    encoder_of,
    find_checkpoint,
    jepa_weights,
    load_method,
    load_pretrained_backbone,
    read_checkpoint,
)
from solo_cjepa.launch.data.loaders import normalization
from solo_cjepa.vit import check_token_vit, embed_patches, encode

FORMATS = ("timm", "hf", "ijepa")
# An export is wrong, not merely rounded, beyond this difference from our tokens (float32).
TOLERANCE = 1e-4

# timm names -> transformers' IJepaModel names outside the blocks (4.x and 5.x alike; the 4.x
# names are those of transformers' I-JEPA conversion script).
HF_TOP = {
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
# Inside the blocks, per transformers version: the layer prefix, then each timm block module's
# name there; the fused "attn.qkv" becomes three.
HF_LAYOUTS = {
    "transformers 4": (
        "encoder.layer.{}.",
        {
            "norm1": "layernorm_before",
            "attn.qkv": (
                "attention.attention.query",
                "attention.attention.key",
                "attention.attention.value",
            ),
            "attn.proj": "attention.output.dense",
            "norm2": "layernorm_after",
            "mlp.fc1": "intermediate.dense",
            "mlp.fc2": "output.dense",
        },
    ),
    "transformers 5": (
        "layers.{}.",
        {
            "norm1": "layernorm_before",
            "attn.qkv": ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
            "attn.proj": "attention.o_proj",
            "norm2": "layernorm_after",
            "mlp.fc1": "mlp.fc1",
            "mlp.fc2": "mlp.fc2",
        },
    ),
}


def probe_images(vit: VisionTransformer, count: int = 2) -> torch.Tensor:
    """Fixed random images of the encoder's input size, to compare an export with the original."""
    height, width = vit.patch_embed.img_size
    generator = torch.Generator().manual_seed(0)
    return torch.randn(count, vit.patch_embed.proj.in_channels, height, width, generator=generator)


@torch.no_grad()
def tokens(vit: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Our final-normed patch tokens ``[B, N, D]``, what every export must reproduce."""
    return encode(vit, embed_patches(vit.eval(), images))


def max_difference(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    """``max |a - b|``; a RuntimeError beyond :data:`TOLERANCE` (the export would be wrong)."""
    difference = (a - b).abs().max().item()
    if not difference <= TOLERANCE:
        raise RuntimeError(f"{what} differ from ours by {difference:.3g} (> {TOLERANCE})")
    return difference


def timm_model_args(vit: VisionTransformer) -> Dict[str, Any]:
    """The ``timm.create_model`` keyword arguments that rebuild ``vit``'s architecture."""
    width = vit.embed_dim
    args = dict(
        img_size=tuple(vit.patch_embed.img_size)[0],
        patch_size=tuple(vit.patch_embed.patch_size)[0],
        embed_dim=width,
        depth=len(vit.blocks),
        num_heads=vit.blocks[0].attn.num_heads,
        mlp_ratio=vit.blocks[0].mlp.fc1.out_features / width,
        class_token=False,
        global_pool=vit.global_pool,
        fc_norm=False,
        num_classes=0,
    )
    if vit.blocks[0].attn.qkv.bias is None:
        args["qkv_bias"] = False
    if vit.dynamic_img_size:
        args["dynamic_img_size"] = True
    return args


def timm_call(architecture: str, weights: str, args: Dict[str, Any]) -> str:
    kwargs = "".join(f", {k}={v!r}" for k, v in args.items())
    return (
        f"timm.create_model({architecture!r}, pretrained=True, "
        f"pretrained_cfg_overlay=dict(file={weights!r}){kwargs})"
    )


def run_normalization(cfg: DictConfig) -> Dict[str, Tuple[float, ...]]:
    """``mean`` and ``std`` of the run's input normalisation (its first crop's pipeline)."""
    first = (cfg.get("augmentations") or [{}])[0]
    normalize = normalization(cfg.data.dataset, first.get("mean"), first.get("std"))
    return {"mean": tuple(normalize.mean), "std": tuple(normalize.std)}


def export_timm(
    vit: VisionTransformer, out: Path, preprocessing: Dict[str, Any]
) -> Tuple[str, float]:
    """Writes ``model.safetensors`` and ``config.json`` (timm's Hub layout, its pretrained cfg
    carrying ``preprocessing``: the run's mean and std) and ``create_model.py``; returns the
    ``timm.create_model`` call and the feature difference of the model that call builds."""
    from timm.models import save_for_hf

    architecture = vit.pretrained_cfg["architecture"]
    args = timm_model_args(vit)
    # The architecture's default cfg names ImageNet weights that these are not.
    vit.pretrained_cfg = {
        **{k: v for k, v in vit.pretrained_cfg.items() if k not in ("tag", "license")},
        "tag": "solo-cjepa",
        **preprocessing,
    }
    save_for_hf(vit, str(out), model_args=args, safe_serialization=True)
    weights = out / "model.safetensors"
    call = timm_call(architecture, str(weights), args)
    script = timm_call(architecture, "WEIGHTS", args).replace("'WEIGHTS'", "WEIGHTS")
    (out / "create_model.py").write_text(
        '"""Rebuilds the exported encoder (written by python -m solo_cjepa.export)."""\n\n'
        "from pathlib import Path\n\nimport timm\n\n"
        'WEIGHTS = str(Path(__file__).with_name("model.safetensors"))\n'
        f"model = {script}.eval()\n"
    )
    rebuilt = timm.create_model(
        architecture, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)), **args
    ).eval()
    images = probe_images(vit)
    with torch.no_grad():
        theirs = rebuilt.forward_features(images)
    return call, max_difference(theirs, tokens(vit, images), "timm's features")


def hf_state_dict(
    state: Dict[str, torch.Tensor], depth: int, layout: str
) -> Dict[str, torch.Tensor]:
    """A timm ViT state dict in ``transformers``' IJepaModel names (``HF_LAYOUTS[layout]``), the
    fused ``qkv`` split into query, key and value as transformers' I-JEPA conversion does."""
    prefix, names = HF_LAYOUTS[layout]
    converted = {HF_TOP[k]: v for k, v in state.items() if k in HF_TOP}
    for i in range(depth):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                value = state[f"blocks.{i}.{ours}.{kind}"]
                if ours == "attn.qkv":
                    for name, part in zip(theirs, value.chunk(3, dim=0)):
                        converted[f"{prefix.format(i)}{name}.{kind}"] = part.clone()
                else:
                    converted[f"{prefix.format(i)}{theirs}.{kind}"] = value
    return converted


def export_hf(vit: VisionTransformer, out: Path) -> float:
    """Writes a folder that ``transformers.IJepaModel.from_pretrained`` loads; returns the
    difference between its ``last_hidden_state`` and our tokens."""
    try:
        from transformers import IJepaConfig, IJepaModel
    except ImportError:
        raise ConfigError(
            "--format hf needs transformers with I-JEPA (>= 4.47): pip install "
            "'transformers>=4.47' (or the plugin's [hf] extra)"
        ) from None
    require(
        vit.blocks[0].attn.qkv.bias is not None and not vit.dynamic_img_size,
        "--format hf needs a ViT with qkv biases and a fixed image size (IJepaModel's)",
    )
    config = IJepaConfig(
        hidden_size=vit.embed_dim,
        num_hidden_layers=len(vit.blocks),
        num_attention_heads=vit.blocks[0].attn.num_heads,
        intermediate_size=vit.blocks[0].mlp.fc1.out_features,
        hidden_act="gelu",
        layer_norm_eps=vit.norm.eps,
        image_size=tuple(vit.patch_embed.img_size)[0],
        patch_size=tuple(vit.patch_embed.patch_size)[0],
        num_channels=vit.patch_embed.proj.in_channels,
        qkv_bias=True,
    )
    model = IJepaModel(config)
    expected = set(model.state_dict())
    for layout in HF_LAYOUTS:
        state = hf_state_dict(vit.state_dict(), len(vit.blocks), layout)
        if set(state) == expected:
            break
    else:
        raise RuntimeError(f"IJepaModel's weight names are none of {list(HF_LAYOUTS)}'")
    model.load_state_dict(state, strict=True)
    model.save_pretrained(str(out))
    reloaded = IJepaModel.from_pretrained(str(out)).eval()
    images = probe_images(vit)
    with torch.no_grad():
        theirs = reloaded(pixel_values=images).last_hidden_state
    return max_difference(theirs, tokens(vit, images), "IJepaModel's last_hidden_state")


def export_ijepa(
    model: nn.Module, cfg: DictConfig, checkpoint: Path, out: Path
) -> Tuple[Path, float]:
    """Writes ``<name>-ep<epoch>.pth.tar`` in the official layout; returns it and the largest
    feature difference of its two encoders read back by our strict loader."""
    weights = jepa_weights(checkpoint, "checkpoint")
    require(
        {"context", "target", "predictor"} <= weights.keys(),
        f"--format ijepa needs a JEPA run (context and target encoders and a predictor); "
        f"{str(checkpoint)!r} holds {sorted(weights)}",
    )
    epoch = completed_epochs(read_checkpoint(checkpoint, "checkpoint"))
    official = ijepa_format.to_official(
        weights["context"],
        weights["target"],
        weights["predictor"],
        num_patches=weights["context"]["pos_embed"].shape[1],
        epoch=epoch,
        loss=None,
        batch_size=cfg.optimizer.batch_size,
        world_size=_world_size(cfg),
        lr=cfg.optimizer.lr,
    )
    path = out / f"{cfg.name}-ep{epoch}.pth.tar"
    torch.save(official, path)
    difference = 0.0
    for role in ENCODER_ATTRIBUTES:
        ours = encoder_of(model, role)
        read_back = copy.deepcopy(ours)
        load_pretrained_backbone(read_back, str(path), role)
        images = probe_images(ours)
        difference = max(
            difference,
            max_difference(tokens(read_back, images), tokens(ours, images), f"the {role} tokens"),
        )
    return path, difference


def completed_epochs(checkpoint: Dict[str, Any]) -> int:
    """Epochs trained to their end (I-JEPA's ``epoch``). Lightning's own ``epoch`` is the running
    epoch's index, not yet advanced when solo's Checkpointer saves at an epoch's end."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    return int(progress.get("current", {}).get("processed", checkpoint.get("epoch", 0)))


def _world_size(cfg: DictConfig) -> int:
    """Processes of the run (I-JEPA's ``world_size``): devices (a count or a list) x nodes."""
    devices = cfg.get("devices", 1)
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        devices = len(devices)
    return (devices if isinstance(devices, int) else 1) * int(cfg.get("num_nodes", 1) or 1)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m solo_cjepa.export",
        description="Export an encoder of a pretraining run for timm, Hugging Face transformers or "
        "facebookresearch/ijepa, and check that their loader gives our features.",
    )
    p.add_argument("checkpoint", help="a .ckpt file, or a run folder (its newest .ckpt)")
    p.add_argument(
        "--encoder",
        choices=tuple(ENCODER_ATTRIBUTES),
        default="target",
        help="target (EMA, what I-JEPA evaluates; the default) or context; --format ijepa "
        "writes both and the predictor",
    )
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    with exit_on_config_error():
        checkpoint = find_checkpoint(args.checkpoint)
        model, cfg = load_method(checkpoint)
        vit = encoder_of(model, args.encoder)
        try:
            check_token_vit(vit)
        except ValueError as err:
            raise ConfigError(f"{checkpoint}: {err}") from None
        args.out.mkdir(parents=True, exist_ok=True)
        if args.format == "timm":
            call, difference = export_timm(vit, args.out, run_normalization(cfg))
            print(call)
            written = args.out / "model.safetensors"
        elif args.format == "hf":
            difference = export_hf(vit, args.out)
            written = args.out
        else:
            written, difference = export_ijepa(model, cfg, checkpoint, args.out)
    summary = {"format": args.format, "encoder": args.encoder, "written": str(written)}
    print(json.dumps({**summary, "max_feature_difference": difference}))
    return 0
