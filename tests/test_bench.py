"""The benchmark scripts run on a tiny configuration, and their reference pieces are right (I-JEPA's
mask loop, the memory counter); no timing is asserted."""

import json
import math
import re

import pytest
import torch
import yaml
from cjepa_helpers import compose_config, fashion_mnist_dir, fast_overrides, run_dirs
from lightning.pytorch import Callback
from omegaconf import OmegaConf

from bench import __main__ as bench_all
from bench import compile as bench_compile
from bench import fastpaths, flops, gpu, masks, profile_step
from bench import loop as bench_loop
from bench.masks import IJEPAMaskLoop
from bench.memory import PeakMemory
from bench.methods import RECIPES, build, parse_spec
from solo_cjepa.launch.run import pretrain, untrained_encoder


@pytest.fixture
def one_thread():
    # Tiny ops gain nothing from a second thread and, on a busy machine, wait for it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_figures(out: str, *labels: str) -> None:
    """Every label is printed, and no figure is NaN or infinite."""
    for label in labels:
        assert label in out
    bad = re.findall(r"(?<![A-Za-z])(?:nan|-?inf)(?![A-Za-z])", out, flags=re.IGNORECASE)
    assert not bad, f"non-finite figures in:\n{out}"


def test_figure_check_catches_nan():
    with pytest.raises(AssertionError):
        assert_figures("cjepa | nan | 1.00", "cjepa")
    assert_figures("cjepa | 12.5 | information", "cjepa")


def test_reference_loop_draws_ijepa_masks():
    context_idx, target_idx = IJEPAMaskLoop(14)(6, torch.Generator().manual_seed(0))
    B, M, Kt = target_idx.shape
    assert (B, M) == (6, 4) and context_idx.shape[0] == 6
    assert 30 <= Kt <= 40  # I-JEPA's 14x14 target blocks: 5x6 .. 8x5
    for context, targets in zip(context_idx, target_idx):
        assert not set(context.tolist()) & set(targets.flatten().tolist())
        used = torch.cat([context, targets.flatten()])
        assert not ((used // 14 == 13) | (used % 14 == 13)).any()  # exclusive upper bound


def test_peak_memory_follows_live_storages():
    resident = torch.empty(100)  # 400 bytes
    with PeakMemory([resident]) as memory:
        a = torch.empty(1000)
        b = a[10:]  # a view: no new storage
        del a, b
        c = torch.empty(250)
    assert memory.peak == 4400 and memory.current == 1400
    del c


def test_method_specs_override_method_kwargs_and_set_the_benchmark_options():
    assert parse_spec("cjepa:pred_layout=single,pred_depth=2") == (
        "cjepa",
        {"pred_layout": "single", "pred_depth": 2},
        {"compile": False, "monitor_every": 50},
    )
    assert parse_spec("vicreg:compile=true,monitor_every=1")[2] == {
        "compile": True,
        "monitor_every": 1,
    }


@pytest.mark.parametrize("recipe", ["cifar", "imagenet"])
def test_the_benchmark_builds_the_shipped_recipes(recipe):
    """What the benchmark times is what main_pretrain.py trains: each method's ViT, predictor,
    masks and heads as the yamls of scripts/pretrain/<recipe> say (read here as plain YAML)."""
    folder = RECIPES / recipe
    cjepa = yaml.safe_load((folder / "cjepa.yaml").read_text())
    vicreg = yaml.safe_load((folder / "vicreg.yaml").read_text())
    assert yaml.safe_load((folder / "ijepa.yaml").read_text())["defaults"][0] == "cjepa"
    assert vicreg["backbone"] == cjepa["backbone"]  # one ViT for all: the comparison's premise

    small = {"backbone": "vit_nano"} if recipe != "cifar" else {}  # ViT-B/16 is slow on a CPU
    models = {
        spec: build(spec, 2, torch.device("cpu"), recipe=recipe, **small).model
        for spec in ("cjepa", "ijepa", "vicreg:proj_hidden_dim=32")
    }
    kwargs = cjepa["method_kwargs"]
    for spec in ("cjepa", "ijepa"):
        model = models[spec]
        assert len(model.predictor.blocks) == kwargs["pred_depth"]
        assert model.predictor.embed.out_features == kwargs["pred_embed_dim"]
        assert model.mask_generator.num_targets == kwargs["num_targets"]
    assert models["cjepa"].vicreg_weight == kwargs["vicreg_weight"] > 0
    assert models["ijepa"].vicreg_weight == 0
    vicreg_model = models["vicreg:proj_hidden_dim=32"]  # the spec overrides the recipe ...
    assert vicreg_model.projector[0].out_features == 32
    # ... and the rest is the recipe's
    assert vicreg_model.projector[-1].out_features == vicreg["method_kwargs"]["proj_output_dim"]
    if recipe == "cifar":  # the recipe's own ViT
        vit = cjepa["backbone"]
        assert models["cjepa"].features_dim == {"vit_tiny": 192, "vit_small": 384}[vit["name"]]
        assert models["cjepa"].backbone.patch_embed.img_size == (vit["kwargs"]["img_size"],) * 2


def test_whole_benchmark_runs_on_a_tiny_config(capsys, one_thread):
    bench_all.main(
        "--backbone vit_nano --batch-size 4 --steps 1 --warmup 0 --matmul-size 64 "
        "--mask-batch-size 8 --grids 8 --mask-repeats 1 "
        "--methods cjepa:pred_layout=single,pred_embed_dim=32,pred_depth=1 vicreg byol".split()
    )
    out = capsys.readouterr().out
    assert_figures(out, "cjepa:pred_layout=single", "vicreg", "byol", "of peak", "8x8", "x vicreg")


def test_component_scripts_run_on_a_tiny_config(capsys, one_thread):
    tiny = "--method cjepa:pred_embed_dim=32,pred_depth=1 --backbone vit_nano --batch-size 4"
    fastpaths.main(tiny.split() + ["--repeats", "1"])
    profile_step.main(tiny.split() + ["--steps", "1", "--rows", "3"])
    masks.main("--batch-size 4 --grids 8 --repeats 1".split())
    flops.main("--size 32 --repeats 1".split())
    out = capsys.readouterr().out
    assert_figures(out, "predictor single, fused attention", "by phase: ", "8x8", "mm 32")


def test_gpu_benchmark_runs_on_a_tiny_cpu_config(capsys, one_thread):
    pytest.importorskip("nvidia.dali")  # the DALI pipeline's figure
    gpu.main(
        "--device cpu --backbone vit_nano --img-size 32 --patch-size 4 --batch-size 4 --steps 1 "
        "--warmup 1 --matmul-size 64 --no-compile --dali-images 8 --dali-batches 1 "
        "--dali-threads 1 --precision 32 "
        "--methods cjepa:pred_embed_dim=32,pred_depth=1,min_keep=4,num_targets=3 "
        "vicreg:proj_hidden_dim=64,proj_output_dim=64".split()
    )
    out = capsys.readouterr().out
    assert_figures(out, "TFLOP/s", "of peak", "syncs", "x vicreg", "DALI pipeline")


def test_loop_benchmark_runs_on_a_tiny_config(tmp_path, capsys, one_thread):
    data = fashion_mnist_dir(tmp_path)
    bench_loop.main(
        "--backbone vit_nano --batch-size 8 --steps 2 --warmup 1 --".split()
        + [f"data.train_path={data}", f"data.val_path={data}", "data.num_workers=0"]
    )
    out = capsys.readouterr().out
    assert_figures(out, "bare step", "per-image PIL loader, 0 workers", "batched augmentations")
    assert re.search(r"batched augmentation \(callback\) +- +\d+\.\d", out), out


@pytest.mark.parametrize("layout", ["repeat", "single"])
def test_compiled_modules_have_no_graph_break(layout):
    run = build(f"cjepa:pred_layout={layout}", 4, torch.device("cpu"), backbone="vit_nano")
    for name, explained in bench_compile.graph_breaks(run, 4, torch.device("cpu")).items():
        assert explained.graph_count == 1 and explained.graph_break_count == 0, name


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the "before"
def test_offline_evaluation_benchmark_runs_on_a_tiny_config(tmp_path, capsys):
    from test_compare import tiny_overrides

    from bench import offline_eval

    offline_eval.main(["--dataset", "custom", "--sklearn-iter", "5", *tiny_overrides(tmp_path)])
    out = capsys.readouterr().out
    assert_figures(out, "raw pixels: 40+10 x", "scikit-learn logreg", "faster")


class InitialWeights(Callback):
    """The context encoder's weights before the first optimiser step."""

    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.clone() for k, v in pl_module.backbone.state_dict().items()}


def test_epoch_curve_starts_from_the_runs_own_initial_weights(tmp_path, capsys, one_thread):
    from bench import epoch_curve

    data = fashion_mnist_dir(tmp_path)
    overrides = fast_overrides(tmp_path / "models") + [
        f"data.train_path={data}",
        f"data.val_path={data}",
        "max_epochs=2",
        "checkpoint.keep_prev=True",
    ]
    initial = InitialWeights()
    pretrain(compose_config("pretrain", "fashion-mnist", "cjepa", overrides), callbacks=[initial])
    (run,) = run_dirs(tmp_path / "models", "cjepa")
    assert [epoch for epoch, _ in epoch_curve.epoch_checkpoints(run)] == [1, 2]

    # epoch 0 is the run's untrained ViT, rebuilt from its args.json alone
    cfg = OmegaConf.create(json.loads((run / "args.json").read_text()))
    rebuilt = untrained_encoder(cfg).state_dict()
    assert rebuilt.keys() == initial.state.keys()
    assert all(torch.equal(rebuilt[k], initial.state[k]) for k in rebuilt)

    points = epoch_curve.main([str(run), "--labels", "tiny", "--out", str(tmp_path / "curve")])
    assert [(p["encoder"], p["epoch"]) for p in points] == [
        ("-", 0),
        ("init", 0),
        ("target", 1),
        ("target", 2),
    ]
    assert json.loads((tmp_path / "curve" / "curve.json").read_text()) == points
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 0
    assert_figures(capsys.readouterr().out, "raw pixels", "tiny", "logreg")


def test_short_runs_scores_the_untrained_vit_and_a_variant_on_the_validation_split(tmp_path):
    from bench import short_runs

    data = fashion_mnist_dir(tmp_path)
    out = tmp_path / "short"
    tiny = ["backbone.name=vit_nano", "optimizer.batch_size=16", "data.num_workers=0"]
    tiny += [f"data.train_path={data}", f"data.val_path={data}", "+limit_train_batches=2"]
    variant = "ijepa both (default)"
    short_runs.main(
        ["--out", str(out), "--budget", "-1", "1", "--untrained", "--variants", variant, "--"]
        + tiny
    )
    untrained, trained = [json.loads(line) for line in (out / "results.jsonl").open()]
    assert (untrained["variant"], trained["variant"]) == ("untrained ViT", variant)
    assert untrained["target_offline_logreg_top1"] == untrained["context_offline_logreg_top1"]
    # two steps at the start of the warm-up: the target is still close to the run's initial
    # weights (an unrelated random ViT would be ~1.4 away)
    assert 0 < trained["target_from_init"] < 0.1
    for key in ("offline_logreg_top1", "offline_knn_top1", "feature_rank"):
        assert math.isfinite(trained[f"target_{key}"]) and math.isfinite(trained[f"context_{key}"])
