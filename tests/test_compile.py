"""``performance.compile`` compiles both encoders' transformer blocks and the predictor in place:
the checkpoint keys stay those of an eager model. (Compiling takes minutes on a CPU, so the
compiled step itself is exercised by ``python3 -m bench.compile``, not here.)"""

import pytest
import torch
from cjepa_helpers import tiny_vit_cfg

from solo_cjepa.errors import ConfigError
from solo_cjepa.method import CJEPA


def build(compile_setting):
    cfg = tiny_vit_cfg()
    cfg.performance = {"compile": compile_setting}
    torch.manual_seed(0)
    return CJEPA(cfg)


def test_compile_wraps_encoders_and_predictor_and_keeps_the_checkpoint_keys():
    eager, compiled = build(False), build(True)
    modules = lambda m: (m.backbone.blocks, m.momentum_backbone.blocks, m.predictor)  # noqa: E731
    assert all(module._compiled_call_impl is None for module in modules(eager))
    assert all(module._compiled_call_impl is not None for module in modules(compiled))
    assert compiled.state_dict().keys() == eager.state_dict().keys()


def test_compile_must_be_a_boolean():
    with pytest.raises(ConfigError, match="performance.compile must be True or False"):
        build("yes")
