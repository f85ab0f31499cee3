"""Linear evaluation (or fine-tuning) of a pretrained encoder from a hydra yaml, as solo-learn's
own ``main_linear.py`` does, but loading the encoder strictly and able to evaluate the target
(EMA) encoder of a momentum method (``pretrained_encoder=target``).

    python main_linear.py --config-name cjepa.yaml pretrained_feature_extractor=<run>.ckpt

The default config directory is ``scripts/linear/fashion-mnist``; a relative ``--config-path``
is resolved against this file's folder, so the command works from any working directory.
"""

import hydra
from omegaconf import DictConfig

from solo_cjepa.errors import exit_on_config_error
from solo_cjepa.launch.run import linear


@hydra.main(version_base="1.2", config_path="scripts/linear/fashion-mnist", config_name="cjepa")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        linear(cfg)


if __name__ == "__main__":
    main()
