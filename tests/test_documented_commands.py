"""Every command the documentation shows runs. The shell blocks of README.md and docs/**/*.md are
read; each ``python main_pretrain.py``, ``python main_linear.py`` and ``python -m solo_cjepa...``
command runs on a tiny budget, the test adding only size overrides (one epoch, two batches, a
generated Fashion-MNIST of 400 images); a ``<run>`` placeholder is the
run folder an earlier command wrote. Commands that need a cluster, a GPU, ImageNet, your own data
or the network are listed in CANNOT_RUN_HERE with a reason; any other line is matched by
NOT_A_PLUGIN_COMMAND or fails the test, as does a command that exits with an error."""

import re
import shlex
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np
import pytest
from cjepa_helpers import REPO, launch_many, write_idx

SHELL_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"<[^<>=/]+>")
RUN_PLACEHOLDER = re.compile(r"(trained_models/\w+/)<[^<>=/]+>")  # <run>, <ijepa run>
SCRIPTS = ("main_pretrain.py", "main_linear.py")

# Documented commands that cannot run in the CPU suite, each with its reason (exact text, after
# joining continuation lines and dropping comments).
CANNOT_RUN_HERE = {
    "python main_pretrain.py --config-path scripts/pretrain/imagenet-100 --config-name "
    "cjepa.yaml devices=[0,1,2,3]": "four GPUs",
    "python main_pretrain.py ... devices=[0,1,2,3,4,5,6,7] num_nodes=2": "two 8-GPU nodes under "
    "a cluster launcher (and '...' stands for the rest of a command)",
    "python -m solo_cjepa.compare --dataset imagenet100 --seeds 0 1 2 --launcher slurm "
    "--partition gpu --gpus 4 --time-limit 720 --out in100/": "a SLURM cluster with GPUs and "
    "ImageNet-100",
    "python -m solo_cjepa.compare report in100/": "the SLURM comparison's folder above",
    "python main_pretrain.py --config-path scripts/pretrain/cifar --config-name cjepa.yaml": (
        "CIFAR is downloaded (network)"
    ),
    "python main_pretrain.py --config-path scripts/pretrain/cifar --config-name cjepa.yaml "
    "data.dataset=cifar100": "CIFAR-100 is downloaded (network)",
    "python main_pretrain.py --config-path scripts/pretrain/imagenet-100 --config-name cjepa.yaml "
    "data.train_path=/data/imagenet-100/train data.val_path=/data/imagenet-100/val": "ImageNet-100",
    "python main_pretrain.py --config-path scripts/pretrain/custom --config-name cjepa.yaml "
    "data.train_path=/data/my-images data.val_path=/data/my-val": "your image folders",
    "python main_linear.py --config-path scripts/linear/cifar --config-name cjepa.yaml "
    "pretrained_feature_extractor=trained_models/cjepa/<run>": "a CIFAR run (network)",
    "python main_pretrain.py --config-path scripts/pretrain/imagenet-100 --config-name "
    "cjepa-dali.yaml": "ImageNet-100 and a GPU for DALI",
    "python main_pretrain.py --config-name cjepa.yaml wandb=private wandb.entity=<you> "
    "wandb.project=<project>": "a W&B account (network)",
    "python main_pretrain.py --config-path scripts/pretrain/imagenet --config-name cjepa.yaml "
    "backbone.name=vit_huge backbone.kwargs.patch_size=14 method_kwargs.pred_depth=12 "
    "+init_from=IN1K-vit.h.14-300e.pth.tar": "ImageNet and the released ViT-H weights (GBs)",
    "python main_linear.py --config-path scripts/linear/imagenet --config-name cjepa.yaml "
    "backbone.name=vit_huge backbone.kwargs.patch_size=14 "
    "pretrained_feature_extractor=IN1K-vit.h.14-300e.pth.tar pretrained_encoder=target": "ImageNet "
    "and the released ViT-H weights (GBs)",
    "python -m solo_cjepa.evaluate IN1K-vit.h.14-300e.pth.tar --dataset imagenet-100 -- "
    "backbone.name=vit_huge backbone.kwargs.patch_size=14 data.train_path=<train> "
    "data.val_path=<val>": "ImageNet-100 and the released ViT-H weights (GBs)",
}
# Documented commands that show a stop: on the generated data (random pixels) the run may end
# with this `error:` line instead of finishing (on Fashion-MNIST the untrained rank is about 5).
DOCUMENTED_STOPS = {
    "python main_pretrain.py --config-name cjepa.yaml ++health.collapse=stop "
    "++health.collapse_rank=4 ++health.collapse_steps=10 max_epochs=1 +limit_train_batches=20 "
    "+limit_val_batches=2 +log_every_n_steps=1": "error: the effective rank of the target "
    "encoder stayed below health.collapse_rank=4 for health.collapse_steps=10 logged steps",
}
# Lines of shell blocks that are not the plugin's commands (first words -> what they are).
NOT_A_PLUGIN_COMMAND = {
    "pip install": "installation",
    "(apt-get install": "installation of Debian's Fashion-MNIST",
    "python3 -m pytest": "the test command: this suite",
    "python3 -m bench": "benchmarks, minutes of CPU each; tests/test_bench.py runs their code",
    "TORCH_LOGS=recompiles python3 -m bench": "a benchmark",
    "TIMM_FUSED_ATTN=0 python3 -m bench": "a benchmark",
    "OMP_NUM_THREADS=1 python3 -m bench": "a benchmark",
    "mkdocs": "the documentation site: tests/test_docs_site.py builds it",
}
# What the test adds, per command: sizes only (with the generated data of TINY_IMAGES, an epoch
# is ten steps of 32 images; the online kNN needs more training images than its k = 20).
SIZE_OVERRIDES = {"max_epochs": "1", "optimizer.batch_size": "32", "data.num_workers": "0"}
TINY_IMAGES = {"train": 320, "t10k": 80}
# --seeds S1 S2 ... keeps its first seed: the number of repeats is a size (each seed is a full
# set of runs), and the multi-seed statistics have their own tests (tests/test_compare_seeds.py).
KEPT_SEEDS = 1


def markdown_files() -> List[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def commands_of(text: str) -> List[str]:
    """The commands of the shell blocks of a markdown text: continuation lines joined, comments
    dropped, ``&&`` chains split."""
    found = []
    for lang, body in SHELL_BLOCK.findall(text):
        if lang not in ("bash", "sh", "shell"):
            lines = [line for line in body.splitlines() if re.match(r"\s*python", line)]
            assert not lines, f"commands outside a bash block: {lines}"
            continue
        pending = ""
        for line in body.splitlines():
            text_part = line[: _comment_start(line)].rstrip()
            pending += " " + text_part.rstrip("\\").strip()
            if text_part.endswith("\\"):
                continue
            found += [" ".join(c.split()) for c in pending.split("&&") if c.strip()]
            pending = ""
    return found


def _comment_start(line: str) -> int:
    """Index of a shell comment's '#' outside quotes (a '#' starting a word), or the length."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return i
    return len(line)


def classify(command: str) -> str:
    """``run`` (a plugin command to run here), ``listed`` (CANNOT_RUN_HERE) or ``other``."""
    if command in CANNOT_RUN_HERE:
        return "listed"
    words = command.split()
    if words[0] in ("python", "python3") and (
        words[1] in SCRIPTS or (words[1] == "-m" and words[2].startswith("solo_cjepa"))
    ):
        return "run"
    if any(command.startswith(prefix) for prefix in NOT_A_PLUGIN_COMMAND):
        return "other"
    raise AssertionError(f"a documented command the test cannot place: {command!r}")


def sized(command: str, data: Path, run: str) -> Tuple[str, List[str]]:
    """The ``(script, args)`` of ``command`` with the size overrides added and ``<run>``
    placeholders filled with ``run``."""
    words = shlex.split(RUN_PLACEHOLDER.sub(rf"\1{run}", command))
    assert not any(PLACEHOLDER.search(w) for w in words), f"placeholder left in {command!r}"
    if words[1] == "-m":
        script, args = f"-m {words[2]}", words[3:]
    else:
        script, args = words[1], words[2:]
    if script == "-m solo_cjepa.compare":
        if args[:1] in (["report"], ["rescore"]):  # a folder an earlier command wrote
            return script, args
        flags, overrides = (
            (args, [])
            if "--" not in args
            else (
                args[: args.index("--")],
                args[args.index("--") + 1 :],
            )
        )
        if "--seeds" in flags:
            i = flags.index("--seeds") + 1
            end = next((j for j in range(i, len(flags)) if flags[j].startswith("--")), len(flags))
            flags = flags[: i + KEPT_SEEDS] + flags[end:]
        if "--epochs" not in flags:
            flags += ["--epochs", "1"]
        sizes = {k: v for k, v in SIZE_OVERRIDES.items() if k != "max_epochs"}
        return script, [*flags, "--", *overrides, *_unset(overrides, sizes), *_data(data)]
    if script == "-m solo_cjepa.evaluate":
        rest = [] if "--" in args else ["--"]
        return script, [*args, *rest, *_data(data)]
    if script in SCRIPTS:
        return script, [*args, *_unset(args, SIZE_OVERRIDES), *_data(data)]
    return script, args  # export, attention: no data, no training


def _unset(args: Iterable[str], sizes: Dict[str, str]) -> List[str]:
    given = {a.split("=", 1)[0].lstrip("+") for a in args}
    return [f"{k}={v}" for k, v in sizes.items() if k.lstrip("+") not in given]


def _data(data: Path) -> List[str]:
    return [f"data.train_path={data}", f"data.val_path={data}"]


def tiny_fashion_mnist(root: Path) -> Path:
    """Fashion-MNIST's IDX layout with TINY_IMAGES images."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in TINY_IMAGES.items():
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def run_commands(commands: List[str], cwd: Path, data: Path) -> Dict[str, dict]:
    """Runs the commands in ``cwd``: first those without placeholders, then those whose
    ``<run>`` is the newest run folder the first ones wrote."""
    results = {}
    first = [c for c in commands if not PLACEHOLDER.search(c)]
    later = [c for c in commands if PLACEHOLDER.search(c)]
    for batch in (first, later):
        runs = sorted((cwd / "trained_models" / "cjepa").glob("*"), key=lambda p: p.stat().st_mtime)
        run = runs[-1].name if runs else "<no run yet>"
        cases = [(*sized(c, data, run), cwd) for c in batch]
        for command, result in zip(batch, launch_many(cases, cwd, timeout_s=1800)):
            results[command] = result
    return results


def documented_commands() -> List[str]:
    commands = []
    for path in markdown_files():
        commands += commands_of(path.read_text())
    return list(dict.fromkeys(commands))  # each distinct command once, in document order


def test_every_command_line_is_placed_and_the_list_is_current():
    commands = documented_commands()
    kinds = {c: classify(c) for c in commands}
    assert sum(k == "run" for k in kinds.values()) >= 10
    stale = [c for c in [*CANNOT_RUN_HERE, *DOCUMENTED_STOPS] if c not in commands]
    assert not stale, f"listed but no longer documented: {stale}"
    broken = "```bash\npython main_pretrian.py --config-name cjepa.yaml\n```\n"
    with pytest.raises(AssertionError, match="cannot place"):
        [classify(c) for c in commands_of(broken)]


def test_documented_commands_run_and_a_broken_copy_fails(tmp_path, monkeypatch):
    """All runnable commands, plus a copy of the first pretraining command with a misspelt key,
    in one batch: the documented ones succeed, the broken copy is reported."""
    # the commands run in another folder: they (and the comparison's runs) import this checkout
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    commands = [c for c in documented_commands() if classify(c) == "run"]
    pretrain = next(c for c in commands if "main_pretrain.py" in c and "<" not in c)
    broken = pretrain + " data.fracton=0.5"  # misspelt data.fraction
    cwd = tmp_path / "work"
    cwd.mkdir()
    shutil.copytree(REPO / "docs" / "study", cwd / "docs" / "study")  # `report docs/study`
    data = tiny_fashion_mnist(tmp_path / "fashion-mnist")
    results = run_commands([*commands, broken], cwd, data)
    failed = {
        c: r["stderr"][-1500:]
        for c, r in results.items()
        if r["code"] != 0
        and c != broken
        and not (c in DOCUMENTED_STOPS and DOCUMENTED_STOPS[c] in r["stderr"])
    }
    assert not failed, "\n\n".join(f"{c}\n{tail}" for c, tail in failed.items())
    assert results[broken]["code"] != 0 and "fracton" in results[broken]["stderr"]
