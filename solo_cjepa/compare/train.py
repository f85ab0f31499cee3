"""One comparison run, in its own process: the launcher's pretraining (what ``main_pretrain.py``
runs) plus the comparison's clock and collapse monitors. Takes ``main_pretrain.py``'s arguments:

    python -m solo_cjepa.compare.train --config-path DIR --config-name cjepa.yaml [overrides]
"""

import os

import hydra
from omegaconf import DictConfig

from solo_cjepa.compare.clock import PROGRESS_ENV, RunClock
from solo_cjepa.compare.feature_monitor import FeatureMonitor
from solo_cjepa.launch import exit_on_config_error, pretrain
from solo_cjepa.offline_eval import evaluated_encoder


@hydra.main(version_base="1.2", config_path=None)
def main(cfg: DictConfig) -> None:
    callbacks = [
        RunClock(os.environ.get(PROGRESS_ENV)),
        FeatureMonitor(evaluated_encoder(cfg.method)),
    ]
    with exit_on_config_error():
        pretrain(cfg, callbacks=callbacks)


if __name__ == "__main__":
    main()
