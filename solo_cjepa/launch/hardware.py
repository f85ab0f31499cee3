"""Lets one yaml run unchanged on a CPU laptop and on GPU nodes: normalises the Lightning keys
``accelerator``, ``devices``, ``strategy``, ``precision``, ``sync_batchnorm`` (and ``dali.device``)
for the machine at hand, and tells the user what it changed.
"""

from typing import List, Union

import torch
from omegaconf import DictConfig, ListConfig

from solo_cjepa.errors import ConfigError, note

ACCELERATORS = ("auto", "gpu", "cuda", "cpu")
PRECISIONS = (
    "64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed", "bf16-true"
)  # fmt: skip


def _device_ids(devices, accelerator: str) -> List[int]:
    """``devices`` as solo-learn wants it: a list with one entry per process on this node."""
    available = torch.cuda.device_count() if accelerator == "gpu" else 1
    error = ConfigError(
        f"devices must be a count >= 1, a list of GPU ids, 'auto' or -1 (all GPUs), got {devices!r}"
    )
    if isinstance(devices, str):
        text = devices.strip()
        try:
            if text == "auto":
                devices = -1
            elif "," in text or text.startswith("["):
                devices = [int(d) for d in text.strip("[]").split(",") if d.strip()]
            else:
                devices = int(text)
        except ValueError:
            raise error from None
    if isinstance(devices, bool) or devices is None:
        raise error
    if isinstance(devices, int):
        if devices == -1:
            return list(range(available))
        if devices < 1:
            raise error
        ids = list(range(devices))
    elif isinstance(devices, (list, tuple, ListConfig)) and len(devices) > 0:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices):
            raise error
        ids = list(devices)
    else:
        raise error
    if accelerator == "cpu":
        if isinstance(devices, int):
            return ids  # an explicit process count: CPU DDP (gloo)
        if len(ids) > 1:
            note(
                f"devices={ids} names GPUs, which this machine lacks: one CPU process "
                "(devices=N runs N CPU processes)"
            )
        return [0]
    if max(ids) >= available:
        raise ConfigError(
            f"devices={ids} asks for GPU {max(ids)}, but this machine has {available} GPU(s) "
            f"(ids 0..{available - 1})"
        )
    return ids


def _precision(precision: str, accelerator: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    half = precision.startswith(("16", "bf16"))
    if accelerator == "cpu" and half:
        return "32-true"  # CPU autocast is slow or unsupported for most ops; full precision it is
    if accelerator == "gpu" and precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        return precision.replace("bf16", "16")
    return precision


def fast_bf16(device: Union[str, torch.device]) -> bool:
    """Whether bfloat16 autocast makes inference faster on ``device``: a GPU with bf16, or a CPU
    with AMX or AVX-512 BF16 units (about 2x on a ViT forward); elsewhere a CPU emulates bf16 and
    autocast is slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (
        torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    )


def normalise_hardware(cfg: DictConfig) -> None:
    """Rewrites the hardware keys of ``cfg`` in place for this machine.

    Afterwards ``cfg.accelerator`` is ``gpu`` or ``cpu``; ``cfg.devices`` a list with one entry per
    process (solo-learn scales the learning rate by its length; see :func:`trainer_devices` for
    what Lightning gets); ``cfg.strategy`` never ``None``; ``cfg.precision`` one this hardware
    supports (CPU: 32 bit; bf16 only on GPUs that have it, else fp16).
    """
    requested = str(cfg.get("accelerator") or "auto").lower()
    if requested not in ACCELERATORS:
        raise ConfigError(f"accelerator must be one of {list(ACCELERATORS)}, got {requested!r}")
    cuda = torch.cuda.is_available()
    accelerator = "gpu" if requested in ("auto", "gpu", "cuda") and cuda else "cpu"
    if requested in ("gpu", "cuda") and not cuda:
        note(f"accelerator={requested} but CUDA is unavailable: using cpu")
    cfg.accelerator = accelerator
    cfg.devices = _device_ids(cfg.get("devices", 1), accelerator)

    num_nodes = int(cfg.get("num_nodes") or 1)
    if num_nodes < 1:
        raise ConfigError(f"num_nodes must be >= 1, got {num_nodes}")
    world_size = len(cfg.devices) * num_nodes
    strategy = cfg.get("strategy") or "auto"
    if isinstance(strategy, str) and strategy.startswith("ddp") and world_size == 1:
        strategy = "auto"  # one process: no process group to set up
    cfg.strategy = strategy
    cfg.sync_batchnorm = bool(cfg.get("sync_batchnorm")) and accelerator == "gpu" and world_size > 1

    requested_precision = str(cfg.get("precision") or "32")
    cfg.precision = _precision(requested_precision, accelerator)
    if cfg.precision != requested_precision:
        note(
            f"precision={requested_precision} is unsupported on this {accelerator}: "
            f"using {cfg.precision}"
        )
    if cfg.get("data") is not None and cfg.data.get("format") == "dali":
        cfg.dali = cfg.get("dali") or {}
        dali_device = cfg.dali.get("device") or "gpu"
        if dali_device not in ("gpu", "cpu"):
            raise ConfigError(f"dali.device must be one of ['gpu', 'cpu'], got {dali_device!r}")
        if dali_device == "gpu" and not cuda:
            note("dali.device=gpu but CUDA is unavailable: using cpu")
            dali_device = "cpu"
        cfg.dali.device = dali_device


def trainer_devices(cfg: DictConfig) -> Union[int, List[int]]:
    """Lightning's ``devices`` for a normalised cfg: a process count on CPU (Lightning rejects a
    list there), the GPU ids otherwise."""
    return len(cfg.devices) if cfg.accelerator == "cpu" else list(cfg.devices)
