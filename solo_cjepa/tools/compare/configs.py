"""Finds the shipped pretraining configs and composes one as the launcher would, so that a bad
method, dataset or override stops the comparison before its first run instead of mid-way.
"""

from pathlib import Path
from typing import List, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import solo_cjepa
from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.run import prepare_pretrain_cfg

PRETRAIN_CONFIGS = Path(solo_cjepa.__file__).resolve().parents[1] / "scripts" / "pretrain"
METHODS = ("cjepa", "ijepa", "vicreg", "byol")


def datasets() -> List[str]:
    return (
        sorted(p.name for p in PRETRAIN_CONFIGS.iterdir() if p.is_dir())
        if PRETRAIN_CONFIGS.is_dir()
        else []
    )


def config_dir(dataset: str) -> Path:
    """``scripts/pretrain/<dataset>`` of this checkout."""
    if not PRETRAIN_CONFIGS.is_dir():
        raise ConfigError(
            f"{PRETRAIN_CONFIGS} is missing: the comparison runs the configs of a source checkout "
            "(pip install -e .)"
        )
    if dataset not in datasets():
        raise ConfigError(f"--dataset must be one of {datasets()}, got {dataset!r}")
    return PRETRAIN_CONFIGS / dataset


def compose_run(dataset: str, config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The parsed cfg that ``main_pretrain.py`` would train with (raises :class:`ConfigError`)."""
    folder = config_dir(dataset)
    if not (folder / f"{config_name}.yaml").is_file():
        raise ConfigError(f"{folder} has no {config_name}.yaml; --methods accepts {list(METHODS)}")
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.2"):
            cfg = compose(config_name=f"{config_name}.yaml", overrides=list(overrides))
    except Exception as err:  # hydra's override and composition errors have no common base
        raise ConfigError(f"{config_name}.yaml with overrides {list(overrides)}: {err}") from None
    return prepare_pretrain_cfg(cfg)
