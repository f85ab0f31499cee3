"""The benchmark scripts run on a tiny configuration, and their reference pieces are right (I-JEPA's
mask loop, the memory counter); no timing is asserted."""

import pytest
import torch

from bench import __main__ as bench_all
from bench import fastpaths, flops, masks, profile_step
from bench.masks import IJEPAMaskLoop
from bench.memory import PeakMemory
from bench.methods import parse_spec


@pytest.fixture
def one_thread():
    # Tiny ops gain nothing from a second thread and, on a busy machine, wait for it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_method_specs_override_method_kwargs():
    assert parse_spec("cjepa:pred_layout=single,pred_depth=2") == (
        "cjepa",
        {"pred_layout": "single", "pred_depth": 2},
    )


def test_whole_benchmark_runs_on_a_tiny_config(capsys, one_thread):
    bench_all.main(
        "--backbone vit_nano --batch-size 4 --steps 1 --warmup 0 --matmul-size 64 "
        "--mask-batch-size 8 --grids 8 --mask-repeats 1 "
        "--methods cjepa:pred_layout=single,pred_embed_dim=32,pred_depth=1 vicreg byol".split()
    )
    out = capsys.readouterr().out
    for name in ("cjepa:pred_layout=single", "vicreg", "byol", "of peak", "8x8", "x vicreg"):
        assert name in out


def test_component_scripts_run_on_a_tiny_config(capsys, one_thread):
    tiny = "--method cjepa:pred_embed_dim=32,pred_depth=1 --backbone vit_nano --batch-size 4"
    fastpaths.main(tiny.split() + ["--repeats", "1"])
    profile_step.main(tiny.split() + ["--steps", "1", "--rows", "3"])
    masks.main("--batch-size 4 --grids 8 --repeats 1".split())
    flops.main("--size 32 --repeats 1".split())
    out = capsys.readouterr().out
    for text in ("predictor single, fused attention", "by phase: ", "8x8", "mm 32"):
        assert text in out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the "before"
def test_offline_evaluation_benchmark_runs_on_a_tiny_config(tmp_path, capsys):
    from test_compare import tiny_overrides

    from bench import offline_eval

    offline_eval.main(["--dataset", "custom", "--sklearn-iter", "5", *tiny_overrides(tmp_path)])
    out = capsys.readouterr().out
    assert "raw pixels: 40+10 x" in out and "scikit-learn logreg" in out and "faster" in out
