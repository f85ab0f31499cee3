"""One comparison run, in its own process: the launcher's pretraining (what ``main_pretrain.py``
runs) plus the comparison's clock and collapse monitors. Takes ``main_pretrain.py``'s arguments:

    python -m solo_cjepa.tools.compare.train --config-path DIR --config-name cjepa.yaml [overrides]
"""

import os

import hydra
from omegaconf import DictConfig

from solo_cjepa.errors import exit_on_config_error
from solo_cjepa.launch.run import pretrain
from solo_cjepa.tools.compare.clock import PROGRESS_ENV, RunClock
from solo_cjepa.tools.compare.feature_monitor import FeatureMonitor
from solo_cjepa.tools.offline_eval import evaluated_encoder


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
