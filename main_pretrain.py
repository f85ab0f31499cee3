"""Pretrains a self-supervised method (C-JEPA or any of solo-learn's) from a hydra yaml, as
solo-learn's own ``main_pretrain.py`` does.

    python main_pretrain.py --config-name cjepa.yaml       # scripts/pretrain/fashion-mnist
    python main_pretrain.py --config-path scripts/pretrain/cifar --config-name cjepa.yaml

The default config directory is ``scripts/pretrain/fashion-mnist``; a relative ``--config-path``
is resolved against this file's folder, so the command works from any working directory.
"""

import hydra
from omegaconf import DictConfig

from solo_cjepa.errors import exit_on_config_error
from solo_cjepa.launch.run import pretrain


@hydra.main(version_base="1.2", config_path="scripts/pretrain/fashion-mnist", config_name="cjepa")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        pretrain(cfg)


if __name__ == "__main__":
    main()
