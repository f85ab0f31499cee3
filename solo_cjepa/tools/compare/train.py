"""One comparison run, in its own process: the launcher's pretraining (what ``main_pretrain.py``
runs) plus the comparison's clock and collapse monitors, or, given a linear config (``--finetune``),
its fine-tuning (what ``main_linear.py`` runs) plus the clock. Takes those scripts' arguments:

    python -m solo_cjepa.tools.compare.train --config-path DIR --config-name cjepa.yaml [overrides]
"""

import os

import hydra
from omegaconf import DictConfig

from solo_cjepa.errors import exit_on_config_error
from solo_cjepa.launch.run import linear, pretrain
from solo_cjepa.tools.compare.clock import PROGRESS_ENV, RunClock
from solo_cjepa.tools.compare.feature_monitor import FeatureMonitor
from solo_cjepa.tools.offline_eval import evaluated_encoder


@hydra.main(version_base="1.2", config_path=None)
def main(cfg: DictConfig) -> None:
    clock = RunClock(os.environ.get(PROGRESS_ENV))
    with exit_on_config_error():
        if "pretrained_feature_extractor" in cfg:  # a linear config
            linear(cfg, callbacks=[clock])
        else:
            pretrain(cfg, callbacks=[clock, FeatureMonitor(evaluated_encoder(cfg.method))])


if __name__ == "__main__":
    main()
