"""The four methods the benchmarks compare, on one ViT, and the training step as Lightning runs it.

cjepa and ijepa (cjepa with ``vicreg_weight: 0``) train on one large crop, solo's vicreg and byol on
two; a spec such as ``cjepa:pred_layout=single`` overrides method_kwargs. Two keys of a spec are the
benchmark's own: ``compile=true`` compiles the method (``performance.compile`` for cjepa, the
backbone for solo's methods), and ``monitor_every=N`` computes C-JEPA's collapse monitors every N
steps (default 50, Lightning's ``log_every_n_steps``; outside a Trainer the method would compute
them at every step).
"""

import contextlib
import itertools
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import yaml
from omegaconf import OmegaConf
from solo.methods import METHODS
from torch.profiler import record_function

import solo_cjepa  # noqa: F401  (registers "cjepa" and the small ViTs)

# The plugin's scripts/pretrain/cifar recipes: AdamW for every method, solo's cifar heads for vicreg
# and byol, and for the JEPAs a predictor (192 wide, 4 deep) and 3 targets sized for an 8x8 grid.
ADAMW = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.04, "exclude_bias_n_norm_wd": True}
JEPA = {"pred_depth": 4, "pred_embed_dim": 192, "num_targets": 3, "min_keep": 4}
EMA = {"base_tau": 0.996, "final_tau": 1.0}

# Lightning's default log_every_n_steps: how often a Trainer has C-JEPA compute its monitors.
MONITOR_EVERY = 50

# name -> (solo method, large crops, method_kwargs, momentum)
METHOD_SETUPS: Dict[str, tuple] = {
    "cjepa": ("cjepa", 1, JEPA, EMA),
    "ijepa": ("cjepa", 1, {**JEPA, "vicreg_weight": 0.0}, EMA),
    "vicreg": ("vicreg", 2, {"proj_hidden_dim": 2048, "proj_output_dim": 2048}, None),
    "byol": (
        "byol",
        2,
        {"proj_hidden_dim": 4096, "proj_output_dim": 256, "pred_hidden_dim": 4096},
        {"base_tau": 0.99, "final_tau": 1.0},
    ),
}


@dataclass
class Run:
    """A built method: the LightningModule, its optimizer and the large crops it trains on."""

    name: str
    model: Any
    optimizer: torch.optim.Optimizer
    num_crops: int


def parse_spec(spec: str) -> tuple:
    """``"cjepa:pred_layout=single,compile=true"`` -> ``("cjepa", {"pred_layout": "single"},
    {"compile": True, "monitor_every": 50})``: method_kwargs and the benchmark's options; values
    are YAML."""
    name, _, overrides = spec.partition(":")
    if name not in METHOD_SETUPS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHOD_SETUPS)}")
    kwargs = {}
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = yaml.safe_load(value)
    options = {
        "compile": bool(kwargs.pop("compile", False)),
        "monitor_every": int(kwargs.pop("monitor_every", MONITOR_EVERY)),
    }
    return name, kwargs, options


def method_cfg(
    spec: str, batch_size: int, backbone: str = "vit_tiny", img_size: int = 32, patch_size: int = 4
):
    """solo cfg of a method spec (see ``parse_spec``) on a mean-pooled ViT without class token."""
    name, overrides, options = parse_spec(spec)
    method, num_crops, method_kwargs, momentum = METHOD_SETUPS[name]
    cfg = {
        "name": f"bench-{spec}",
        "method": method,
        "backbone": {
            "name": backbone,
            "kwargs": {
                "img_size": img_size,
                "patch_size": patch_size,
                "class_token": False,
                "global_pool": "avg",
                "fc_norm": False,
            },
        },
        "method_kwargs": {**method_kwargs, **overrides},
        "data": {
            "dataset": "cifar10",
            "num_large_crops": num_crops,
            "num_small_crops": 0,
            "num_classes": 10,
        },
        "optimizer": {"batch_size": batch_size, "classifier_lr": 1e-3, **ADAMW},
        # Lightning would also step a warmup-cosine schedule; "none" needs no Trainer.
        "scheduler": {"name": "none"},
        "max_epochs": 1,
        "devices": 1,
        "num_nodes": 1,
        "performance": {"compile": options["compile"]},
    }
    if momentum is not None:
        cfg["momentum"] = momentum
    cfg = OmegaConf.create(cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg


def build(
    spec: str, batch_size: int, device: torch.device, channels_last: bool = True, **vit
) -> Run:
    """Builds a method as ``main_pretrain.py`` does (device, channels_last) and its optimizer."""
    cfg = method_cfg(spec, batch_size, **vit)
    cfg.performance.disable_channel_last = not channels_last
    model = METHODS[cfg.method](cfg).to(device)
    if cfg.performance.compile and cfg.method != "cjepa":
        model.backbone.compile()  # solo's methods have no compile option
    if hasattr(model, "_monitors_due"):  # a Trainer's cadence, without a Trainer
        calls, every = itertools.count(), parse_spec(spec)[2]["monitor_every"]
        model._monitors_due = lambda: next(calls) % every == 0
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    return Run(spec, model, model.configure_optimizers(), cfg.data.num_large_crops)


def image_batch(run: Run, batch_size: int, device: torch.device, img_size: int = 32) -> List:
    """solo's training batch ``[indexes, [crops], targets]`` of random images."""
    crops = [
        torch.randn(batch_size, 3, img_size, img_size, device=device) for _ in range(run.num_crops)
    ]
    return [
        torch.arange(batch_size, device=device),
        crops,
        torch.randint(0, 10, (batch_size,), device=device),
    ]


def autocast(device: torch.device, precision: str):
    """Lightning's ``bf16-mixed`` autocast around the forward, or nothing for ``32``."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def train_step(run: Run, batch: List, batch_idx: int, precision: str = "32") -> torch.Tensor:
    """One training step in the order of Lightning's automatic optimisation: ``training_step``
    under the precision's autocast, ``zero_grad(set_to_none)``, backward, optimizer step, then the
    EMA update that ``BaseMomentumMethod.on_train_batch_end`` runs after a real optimizer step.

    Without a Trainer, ``self.log`` returns early (Lightning supports calling ``*_step`` methods
    this way); the logged values are still computed.
    """
    model, optimizer = run.model, run.optimizer
    # The labels name the phases in a torch.profiler trace (bench.profile_step).
    with record_function("forward"), autocast(batch[2].device, precision):
        loss = model.training_step(batch, batch_idx)
    with record_function("backward"):
        model.optimizer_zero_grad(0, 0, optimizer)
        loss.backward()
    with record_function("optimizer"):
        optimizer.step()
    with record_function("ema"):
        for online, target in getattr(model, "momentum_pairs", []):
            model.momentum_updater.update(online, target)
    return loss.detach()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def default_device(name: Optional[str] = None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
