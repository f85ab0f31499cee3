"""The comparison's low-shot columns and ``--finetune`` on a tiny run, and ``rescore DIR``: records
of an earlier version (no low-shot numbers) get them back from the checkpoint, identical to a
fresh evaluation, the floors too; a run whose checkpoint is gone keeps its record; fine-tuning
numbers survive a rescore."""

import csv
import json

import pytest
import torch
from test_compare import tiny_overrides

from solo_cjepa.errors import ConfigError
from solo_cjepa.tools.compare.__main__ import build_plan, main
from solo_cjepa.tools.compare.records import FLOORS, RUN, load_plan, save_outcome, save_plan
from solo_cjepa.tools.compare.runner import RunOutcome, RunSpec
from solo_cjepa.tools.offline_eval import main as evaluate_command

LOW_SHOT = ("1pct", "10pct", "1shot", "5shot", "10shot")


def read_rows(out):
    with open(out / "report.csv") as f:
        return {row["method"]: row for row in csv.DictReader(f)}


def strip_low_shot(path):
    """A record as written before the low-shot probes: their keys removed."""
    data = json.loads(path.read_text())
    rows = data if isinstance(data, list) else [data["offline"]]
    for row in rows:
        for key in [k for k in row if "shot" in k or "pct" in k]:
            del row[key]
    path.write_text(json.dumps(data))


def test_low_shot_finetune_and_rescore(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["--dataset", "custom", "--methods", "cjepa", "--epochs", "1", "--out"]
    finetune = [
        "--finetune",
        "--finetune-epochs",
        "1",
        *("--finetune-override", "++limit_train_batches=2"),
        *("--finetune-override", "optimizer.batch_size=8"),
        *("--finetune-override", "data.num_workers=0"),
    ]
    overrides = tiny_overrides(tmp_path)
    assert main([*argv, str(out), *finetune, "--", *overrides]) == 0

    rows = read_rows(out)
    cjepa = rows["cjepa"]
    # 8 training images a class: 1 % and 10 % round to one a class, 10 shots cannot be drawn
    for encoder in ("target", "context"):
        for setting in ("1pct", "10pct", "1shot", "5shot"):
            assert 0 <= float(cjepa[f"offline_logreg_{setting}_top1_{encoder}"]) <= 100
            assert float(cjepa[f"offline_logreg_{setting}_top1_std_{encoder}"]) >= 0
        assert cjepa[f"offline_logreg_10shot_top1_{encoder}"] == ""
        # 1 % and 1 shot are the same one image a class, drawn alike
        one = cjepa[f"offline_logreg_1shot_top1_{encoder}"]
        assert cjepa[f"offline_logreg_1pct_top1_{encoder}"] == one
    pixels = rows["raw pixels"]
    assert pixels["offline_logreg_5shot_top1_target"] == pixels["offline_logreg_5shot_top1_context"]

    # fine-tuning: the evaluated encoder, one epoch of two steps, top-1 on the validation set
    assert cjepa["finetune_encoder"] == "target"
    assert 0 <= float(cjepa["finetune_top1"]) <= 100 and float(cjepa["finetune_epochs"]) == 1.0
    assert float(cjepa["finetune_wall_time_s"]) > 0
    assert cjepa["frozen_logreg_top1"] == cjepa["offline_logreg_top1_target"]
    (pretrained,) = (out / "cjepa").glob("cjepa/*/*.ckpt")
    (tuned,) = (out / "cjepa" / "finetune").glob("linear/*/*.ckpt")
    before = torch.load(pretrained, map_location="cpu", weights_only=True)["state_dict"]
    after = torch.load(tuned, map_location="cpu", weights_only=True)["state_dict"]
    key = "blocks.0.attn.qkv.weight"
    assert not torch.equal(after[f"backbone.{key}"], before[f"momentum_backbone.{key}"])
    report = (out / "report.md").read_text()
    assert "## Low-shot linear probes" in report and "| method | target: logreg 1 % |" in report
    assert "## Fine-tuning" in report and "| cjepa | target |" in report
    assert "- **fine-tuning**: custom/finetune.yaml, 1 epochs" in report
    printed = capsys.readouterr().out
    assert "[1/1] cjepa: ok" in printed and "fine-tuned" in printed

    # the evaluation command's settings
    (run,) = (out / "cjepa").glob("cjepa/*")
    flags = ["--dataset", "custom", "--config", "cjepa"]
    settings = ["--fractions", "0.5", "--shots", "2", "--draws", "2"]
    for extra in (settings, ["--no-low-shot"]):
        evaluate_command([str(run), *extra, *flags, "--", *overrides])
        scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        low_shot = {key for key in scores if "shot" in key or "pct" in key}
        if extra == settings:
            assert low_shot == {
                f"offline_logreg_{s}_top1{tail}"
                for s in ("50pct", "2shot")
                for tail in ("", "_std")
            }
            assert scores["offline_logreg_top1"] == pytest.approx(
                float(cjepa["offline_logreg_top1_target"])
            )
        else:
            assert low_shot == set()

    # an earlier version's records, and a second run whose checkpoint was not kept
    before_rows = rows
    for path in (out / "cjepa" / RUN, out / FLOORS):
        strip_low_shot(path)
    plan = load_plan(out)
    old = RunSpec("vicreg", "vicreg")
    save_plan(out, plan["title"], plan["settings"], [*plan["runs"], old])
    gone = out / "vicreg" / "vicreg" / "csv-old"
    gone.mkdir(parents=True)
    outcome = RunOutcome(old, "ok", 9.0, gone, offline={"offline_logreg_top1_context": 50.0})
    outcome.finetune = {"finetune_encoder": "context", "finetune_error": "failed (exit 1): boom"}
    save_outcome(out / "vicreg", outcome)
    assert main(["report", str(out)]) == 0
    assert read_rows(out)["cjepa"]["offline_logreg_5shot_top1_target"] == ""
    assert "## Low-shot" not in (out / "report.md").read_text()

    assert main(["rescore", str(out)]) == 0
    rows = read_rows(out)
    # the same numbers as the first evaluation: cjepa's and the floors', from the checkpoint and
    # the first run's config; fine-tuning numbers kept
    for name in ("cjepa", "raw pixels", "random init (vit_nano)"):
        for key, value in before_rows[name].items():
            if key.startswith(("offline_", "feature_rank", "finetune_top1")):
                assert rows[name][key] == pytest.approx(value), (name, key)
    assert rows["vicreg"]["offline_logreg_5shot_top1_context"] == ""  # kept as it was
    assert rows["vicreg"]["offline_logreg_top1_context"] == "50.0"
    printed = capsys.readouterr().out
    assert "vicreg: kept as it is: no checkpoint" in printed and "cjepa: rescored" in printed
    report = (out / "report.md").read_text()
    assert "## Low-shot linear probes" in report and "- **rescored**:" in report
    assert "- **vicreg** fine-tuning failed (exit 1): boom (log: `" in report


def test_finetune_flags():
    plan = build_plan(["--finetune", "--finetune-epochs", "2", "--finetune-override", "a=1"])
    assert plan.finetuning.epochs == 2 and plan.finetuning.overrides == ("a=1",)
    assert plan.finetuning.config_dir.endswith("scripts/linear/fashion-mnist")
    assert build_plan([]).finetuning is None
    with pytest.raises(ConfigError, match="are for --finetune"):
        build_plan(["--finetune-epochs", "2"])
    with pytest.raises(ConfigError, match="--finetune-epochs must be > 0"):
        build_plan(["--finetune", "--finetune-epochs", "0"])
