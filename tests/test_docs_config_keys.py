"""The key table of docs/configs.md is every key the plugin adds: the keys the launchers and the
method read (``omegaconf_select`` calls) that solo-learn itself does not read, and C-JEPA's
``method_kwargs`` with the defaults the method fills in."""

import inspect
import re
from pathlib import Path

import solo
import yaml
from cjepa_helpers import REPO, compose_config
from lightning.pytorch import Trainer
from omegaconf import OmegaConf
from solo.args.pretrain import parse_cfg

from solo_cjepa.health import COLLAPSE_DEFAULTS
from solo_cjepa.method import CJEPA

READ = re.compile(r'omegaconf_select\(\s*\w+,\s*f?"([\w.]+)"')
ROW = re.compile(r"^\| `([\w.]+)` \| [^|]+ \| `([^`]+)`")
# Read by the plugin and by solo-learn too, but not through a literal omegaconf_select in solo's
# package: config nodes, and keys solo-learn's own main_pretrain.py reads (not installed).
SOLO_KEYS_READ_ELSEWHERE = {"augmentations", "momentum", "data.num_workers", "data.train_path"}
# Config nodes the launchers fill key by key from a dict of defaults (documented per key).
NODES = {"health": COLLAPSE_DEFAULTS}


def documented() -> dict:
    text = (REPO / "docs" / "configs.md").read_text()
    table = text.split("## Keys the plugin adds", 1)[1]
    rows = [ROW.match(line) for line in table.splitlines()]
    return {m.group(1): m.group(2) for m in rows if m}


def literal_reads(files) -> set:
    return {key for f in files for key in READ.findall(Path(f).read_text())}


def method_defaults() -> dict:
    """C-JEPA's method_kwargs as the method fills them in for a yaml that sets none."""
    cfg = compose_config("pretrain", "cifar", "cjepa")
    OmegaConf.set_struct(cfg, False)
    cfg.method_kwargs = {}
    cfg = CJEPA.add_and_assert_specific_cfg(parse_cfg(cfg))
    return OmegaConf.to_container(cfg.method_kwargs)


def test_table_lists_every_key_the_plugin_adds():
    plugin = literal_reads(
        [REPO / "solo_cjepa" / "method.py", *(REPO / "solo_cjepa" / "launch").rglob("*.py")]
    )
    solo_reads = literal_reads(Path(solo.__file__).parent.rglob("*.py"))
    trainer_flags = set(inspect.signature(Trainer.__init__).parameters)
    added = plugin - solo_reads - trainer_flags - SOLO_KEYS_READ_ELSEWHERE
    added |= {f"method_kwargs.{key}" for key in method_defaults()}
    for node, defaults in NODES.items():
        added = added - {node} | {f"{node}.{key}" for key in defaults}
    assert set(documented()) == added


def test_node_defaults_in_the_table_are_the_launchers():
    table = documented()
    for node, defaults in NODES.items():
        for key, value in defaults.items():
            assert yaml.safe_load(table[f"{node}.{key}"]) == value, key


def test_method_defaults_in_the_table_are_the_methods():
    table = documented()
    for key, value in method_defaults().items():
        assert yaml.safe_load(table[f"method_kwargs.{key}"]) == value, key
