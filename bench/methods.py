"""The methods the benchmarks compare, built from the shipped recipes, and the training step as
Lightning runs it.

A method is the yaml of its name in ``scripts/pretrain/<recipe>`` (cjepa, ijepa, vicreg, byol), as
``main_pretrain.py`` parses it; a spec such as ``cjepa:pred_layout=single`` overrides method_kwargs.
Two keys of a spec are the benchmark's own: ``compile=true`` compiles the method
(``performance.compile`` for cjepa, the backbone for solo's methods), and ``monitor_every=N``
computes C-JEPA's collapse monitors every N steps (default 50, Lightning's ``log_every_n_steps``;
outside a Trainer the method would compute them at every step).
"""

import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from solo.args.pretrain import parse_cfg
from torch.profiler import record_function

from solo_cjepa.launch.hardware import normalise_hardware
from solo_cjepa.launch.run import build_method

RECIPES = Path(__file__).resolve().parents[1] / "scripts" / "pretrain"

# Lightning's default log_every_n_steps: how often a Trainer has C-JEPA compute its monitors.
MONITOR_EVERY = 50


@dataclass
class Run:
    """A built method: the LightningModule, its optimizer, its large crops and their size."""

    name: str
    model: Any
    optimizer: torch.optim.Optimizer
    num_crops: int
    img_size: int


def recipes(folder: str) -> List[str]:
    """The methods ``scripts/pretrain/<folder>`` has a recipe for (its yamls but the DALI ones)."""
    names = (path.stem for path in (RECIPES / folder).glob("*.yaml"))
    return sorted(name for name in names if not name.endswith("-dali"))


def parse_spec(spec: str) -> tuple:
    """``"cjepa:pred_layout=single,compile=true"`` -> ``("cjepa", {"pred_layout": "single"},
    {"compile": True, "monitor_every": 50})``: method_kwargs and the benchmark's options; values
    are YAML."""
    name, _, overrides = spec.partition(":")
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
    spec: str,
    batch_size: int,
    recipe: str = "cifar",
    backbone: Optional[str] = None,
    img_size: Optional[int] = None,
    patch_size: Optional[int] = None,
) -> DictConfig:
    """The cfg ``main_pretrain.py`` makes of ``scripts/pretrain/<recipe>/<method>.yaml`` (ViT,
    method_kwargs, momentum, optimizer, crops), with the spec's method_kwargs (see
    ``parse_spec``), the benchmark's batch size, optionally another ViT, and no learning-rate
    schedule (there is no Trainer to step it)."""
    name, overrides, options = parse_spec(spec)
    if name not in recipes(recipe):
        raise ValueError(f"unknown method {name!r}; choose from {recipes(recipe)}")
    vit = {"name": backbone, "kwargs.img_size": img_size, "kwargs.patch_size": patch_size}
    settings = [f"backbone.{key}={value}" for key, value in vit.items() if value is not None]
    settings += [f"optimizer.batch_size={batch_size}", "scheduler.name=none", "data.val_path=null"]
    with initialize_config_dir(config_dir=str(RECIPES / recipe), version_base="1.2"):
        cfg = compose(config_name=name, overrides=settings)
    OmegaConf.set_struct(cfg, False)
    cfg.method_kwargs.update(overrides)
    cfg.precision = "32-true"  # the benchmark sets its own autocast
    normalise_hardware(cfg)
    cfg = parse_cfg(cfg)  # main_pretrain.py's parsing, without its checks of the data folders
    if cfg.method == "cjepa":
        cfg.performance.compile = options["compile"]
    return cfg


def build(
    spec: str,
    batch_size: int,
    device: torch.device,
    channels_last: bool = True,
    recipe: str = "cifar",
    **vit,
) -> Run:
    """Builds a method as ``main_pretrain.py`` does (device, channels_last) and its optimizer."""
    cfg = method_cfg(spec, batch_size, recipe, **vit)
    cfg.performance = {**cfg.get("performance", {}), "disable_channel_last": not channels_last}
    model = build_method(cfg).to(device)
    options = parse_spec(spec)[2]
    if options["compile"] and cfg.method != "cjepa":
        model.backbone.compile()  # solo's methods have no compile option
    if hasattr(model, "_monitors_due"):  # a Trainer's cadence, without a Trainer
        calls, every = itertools.count(), options["monitor_every"]
        model._monitors_due = lambda: next(calls) % every == 0
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = model.configure_optimizers()
    img_size = cfg.backbone.kwargs.img_size
    return Run(spec, model, optimizer, cfg.data.num_large_crops, img_size)


def image_batch(run: Run, batch_size: int, device: torch.device) -> List:
    """solo's training batch ``[indexes, [crops], targets]`` of random images."""
    size = run.img_size
    crops = [torch.randn(batch_size, 3, size, size, device=device) for _ in range(run.num_crops)]
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
