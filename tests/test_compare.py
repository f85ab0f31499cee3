"""``python -m solo_cjepa.compare``: two methods for a few steps on a generated image folder give
a report (Markdown, CSV, decodable PNGs); a failing run is marked without losing the rest; the
budget and flag logic."""

import csv
import json
from pathlib import Path

import pytest
import torch
from cjepa_helpers import compose_config, image_folder
from PIL import Image

from solo_cjepa.errors import ConfigError
from solo_cjepa.launch.run import build_method, prepare_pretrain_cfg
from solo_cjepa.tools.compare.__main__ import build_plan, main
from solo_cjepa.tools.compare.metrics import curve, drop_partial_epoch_knn, read_metrics, summary
from solo_cjepa.tools.compare.pipeline import Plan, per_run_minutes, run_comparison
from solo_cjepa.tools.compare.presets import ABLATIONS, folder_name, with_seeds
from solo_cjepa.tools.compare.runner import RunSpec, budget_overrides, eta_s, progress_text
from solo_cjepa.tools.offline_eval import main as evaluate_command


def tiny_overrides(tmp_path: Path):
    """Shrinks the custom-data yamls to vit_nano on 32 px images of 5 classes, 2 steps."""
    train = image_folder(tmp_path / "train", num_classes=5, per_class=8, size=32)
    val = image_folder(tmp_path / "val", num_classes=5, per_class=2, size=32)
    return [
        f"data.train_path={train}",
        f"data.val_path={val}",
        "data.num_workers=0",
        "backbone.name=vit_nano",
        "backbone.kwargs.img_size=32",
        "backbone.kwargs.patch_size=4",
        "augmentations.0.crop_size=32",
        "optimizer.batch_size=8",
        "++limit_train_batches=2",
        "++log_every_n_steps=1",
        "++enable_model_summary=False",
        "++method_kwargs.min_keep=4",
        "++method_kwargs.pred_depth=1",
        "++method_kwargs.pred_embed_dim=32",
    ]


def read_report(out: Path):
    with open(out / "report.csv") as f:
        return {row["method"]: row for row in csv.DictReader(f)}


def test_two_methods_give_report_table_and_plots(tmp_path, capsys):
    out = tmp_path / "report"
    argv = [
        "--dataset",
        "custom",
        "--methods",
        "cjepa",
        "vicreg",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    overrides = tiny_overrides(tmp_path)
    assert main([*argv, "--", *overrides]) == 0

    rows = read_report(out)
    # each method's own untrained ViT (C-JEPA's has fixed positions, VICReg's learned ones)
    floors = ["random init (vit_nano, cjepa)", "random init (vit_nano, vicreg)"]
    assert list(rows) == ["cjepa", "vicreg", "raw pixels", *floors]
    assert rows[floors[0]]["feature_rank_context"] != rows[floors[1]]["feature_rank_context"]
    for name in ("cjepa", "vicreg"):
        row = rows[name]
        assert row["status"] == "ok" and float(row["epochs"]) == 1.0
        for key in ("images_per_s", "peak_memory_mb", "online_linear_top1", "online_knn_top1"):
            assert float(row[key]) > 0, key
        assert 0 <= float(row["offline_logreg_top1_context"]) <= 100
        assert 1 <= float(row["feature_rank_context"]) <= 64
    # every encoder a run has: cjepa's EMA target too, VICReg has none; a floor counts for both
    assert (
        rows["cjepa"]["offline_knn_top1_target"] and not rows["vicreg"]["offline_knn_top1_target"]
    )
    for floor in ("raw pixels", *floors):
        for metric in ("offline_logreg_top1", "offline_knn_top1", "feature_rank"):
            assert rows[floor][f"{metric}_target"] == rows[floor][f"{metric}_context"] != ""
    assert {row["split"] for row in rows.values()} == {"test"}  # no data.holdout
    assert (
        rows["cjepa"]["online_linear_top1_target"]
        and not rows["vicreg"]["online_linear_top1_target"]
    )
    assert rows["raw pixels"]["status"] == "floor"

    report = (out / "report.md").read_text()
    assert "| cjepa | 1.00 |" in report and "random init (vit_nano, vicreg)" in report
    assert "| method | target: offline logreg top-1 | target: offline kNN top-1 |" in report
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} == {
        "accuracy_vs_epoch.png",
        "accuracy_vs_time.png",
        "losses.png",
        "collapse.png",
    }
    for png in pngs:
        with Image.open(png) as image:
            image.load()
            assert image.format == "PNG" and min(image.size) > 100
        assert f"]({png.name})" in report
    # each run trained in its own folder, through the launcher's CSV logger and checkpointer,
    # with the clock's and the collapse monitor's values among its metrics
    (run,) = (out / "cjepa").glob("cjepa/*")
    assert len(list(run.glob("*.ckpt"))) == 1
    metrics = read_metrics(run / "metrics.csv")
    steps, ranks = curve(metrics, "step", "monitor_feature_rank")
    assert steps == [0, 1, 2] and all(r >= 1 for r in ranks)
    epochs, minutes = curve(metrics, "val_epochs_done", "val_time_elapsed_s")
    assert epochs == [1.0] and minutes[0] > 0
    printed = capsys.readouterr().out
    assert "[1/2] cjepa:" in printed and "[2/2] vicreg: ok" in printed

    # the evaluation command reads both encoders from the checkpoint by another path (strict
    # loading of each into a fresh backbone): the same numbers as the run's record
    flags = ["--encoder", "both", "--dataset", "custom", "--config", "cjepa"]
    evaluate_command([str(run), *flags, "--", *overrides])
    both = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for encoder in ("target", "context"):
        for metric, value in both[encoder].items():  # None: a low-shot setting left out
            cell = rows["cjepa"][f"{metric}_{encoder}"]
            assert cell == "" if value is None else float(cell) == pytest.approx(value), metric
    assert both["target"] != both["context"]  # two steps of EMA apart


def test_failed_run_is_marked_and_the_report_still_written(tmp_path):
    # passes the up-front config checks, fails when the run's Trainer is built
    broken = RunSpec("broken", "cjepa", ("++accumulate_grad_batches=0",))
    plan = Plan("custom", [broken], tmp_path / "out", epochs=1, overrides=tiny_overrides(tmp_path))
    report = run_comparison(plan)

    rows = {row["method"]: row for row in report.rows}
    assert rows["broken"]["status"] == "failed (exit 1)"
    assert rows["random init (vit_nano)"]["status"] == "floor"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed runs" in text and "**broken** failed (exit 1): ZeroDivisionError" in text
    assert "broken/train.log" in text
    assert read_report(tmp_path / "out")["broken"]["status"] == "failed (exit 1)"


def test_knn_of_a_validation_after_a_mid_epoch_stop_is_left_out():
    # epoch ends at 1 and 2, then a time budget stopped the run 3 steps into the third epoch
    rows = [
        {"val_epochs_done": 1.0, "val_acc1": 40.0, "val_knn_acc1": 45.0, "step": 99.0},
        {"train_jepa_loss_step": 0.5, "step": 150.0},
        {"val_epochs_done": 2.0, "val_acc1": 50.0, "val_knn_acc1": 55.0, "step": 199.0},
        {"val_epochs_done": 2.03, "val_acc1": 51.0, "val_knn_acc1": 20.0, "step": 202.0},
    ]
    kept = drop_partial_epoch_knn(rows)
    assert curve(kept, "val_epochs_done", "val_knn_acc1") == ([1.0, 2.0], [45.0, 55.0])
    assert curve(kept, "val_epochs_done", "val_acc1") == ([1.0, 2.0, 2.03], [40.0, 50.0, 51.0])
    numbers = summary(kept)
    assert numbers["online_knn_top1"] == 55.0 and numbers["online_linear_top1"] == 51.0
    assert kept[1] == rows[1]


def test_total_budget_leaves_equal_training_time_or_says_it_cannot():
    # 60 min, 2 min gone, 80 s per evaluation of an encoder, 4 runs: three with two encoders
    minutes = per_run_minutes(60, 120, 80, [2, 2, 1, 2])
    overhead = 4 * 45 + (3 * 2 + 1) * 80 + 4 * 0.5 * 80 + 120
    assert minutes == pytest.approx((60 * 60 * 0.92 - overhead) / 4 / 60)
    with pytest.raises(ConfigError, match="--total-minutes 5 leaves"):
        per_run_minutes(5, 60, 80, [2, 2, 1, 2])


def test_an_untrained_vits_two_encoders_are_one():
    # why one random-init evaluation is the floor of both encoders
    images = torch.randn(4, 3, 28, 28)
    for name in ("cjepa", "byol"):
        cfg = compose_config("pretrain", "fashion-mnist", name, ["backbone.name=vit_nano"])
        model = build_method(prepare_pretrain_cfg(cfg)).eval()
        with torch.no_grad():
            assert torch.equal(model.backbone(images), model.momentum_backbone(images)), name


def test_budget_overrides_and_eta():
    assert budget_overrides(3, None) == ["++max_epochs=3"]
    assert budget_overrides(None, 90.5) == ["++max_time=00:01:30:30"]
    progress = {"step": 10, "total_steps": 100, "time_elapsed_s": 20.0}
    assert eta_s(progress, None) == pytest.approx(180)
    assert eta_s(progress, 60) == pytest.approx(40)  # the time budget ends first
    assert eta_s({**progress, "step": 0}, None) is None
    # the last report of a run, after Lightning counted past its final epoch
    done = {"epoch": 2, "max_epochs": 2, "step": 100, "total_steps": 100, "time_elapsed_s": 90}
    assert progress_text(done, None).startswith("epoch 2/2  step 100/100  1m30s")
    assert progress_text({**done, "max_epochs": -1}, None).startswith("epoch 3/-1")


def test_flags_presets_and_ablation():
    plan = build_plan(["--preset", "mini", "--out", "x", "--", "++data.fraction=0.5"])
    assert plan.dataset == "fashion-mnist" and [s.name for s in plan.specs] == [
        "cjepa",
        "ijepa",
        "vicreg",
        "byol",
    ]
    assert (
        plan.total_minutes == 60
        and plan.minutes is None
        and plan.overrides[-1] == "++data.fraction=0.5"
    )
    # an explicit per-run budget replaces the preset's total one
    plan = build_plan(["--preset", "mini", "--minutes", "2"])
    assert plan.minutes == 2 and plan.total_minutes is None

    plan = build_plan(["--ablation", "vicreg", "--epochs", "1"])
    assert plan.specs == ABLATIONS["vicreg"] and {s.config_name for s in plan.specs} == {"cjepa"}
    assert [folder_name(s) for s in plan.specs] == [
        "neither-i-jepa",
        "var-cov-only",
        "invariance-only",
        "var-cov-invariance-c-jepa",
    ]
    # with the ablation, cjepa and ijepa are its both/neither entries: not run twice
    plan = build_plan(["--ablation", "vicreg", "--methods", "cjepa", "ijepa", "byol"])
    assert [s.name for s in plan.specs] == [s.name for s in ABLATIONS["vicreg"]] + ["byol"]
    plan = build_plan(["--methods", "cjepa", "--seeds", "0", "1", "--launcher", "joblib"])
    assert plan.seeds == [0, 1] and plan.launcher.name == "joblib"
    assert [folder_name(s) for s in with_seeds(plan.specs, plan.seeds)] == [
        "cjepa/seed-0",
        "cjepa/seed-1",
    ]
    with pytest.raises(ConfigError, match="--seeds must differ"):
        build_plan(["--seeds", "1", "1"])
    with pytest.raises(ConfigError, match="are for --launcher slurm"):
        build_plan(["--partition", "gpu"])
    with pytest.raises(ConfigError, match="--minutes must be > 0"):
        build_plan(["--minutes", "0"])
    with pytest.raises(SystemExit):
        build_plan(["--methods", "simclr"])


def test_bad_dataset_or_method_setting_stops_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--dataset", "mnist", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "--dataset must be one of" in capsys.readouterr().err
    argv = ["--dataset", "custom", "--methods", "cjepa", "--out", str(tmp_path / "out")]
    overrides = [*tiny_overrides(tmp_path), "++method_kwargs.loss_type=nonsense"]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--", *overrides])
    assert stop.value.code == 2
    assert "method_kwargs.loss_type must be one of" in capsys.readouterr().err
    assert not (tmp_path / "out" / "cjepa").exists()
