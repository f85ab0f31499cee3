"""Seeds in the comparison: the Student-t arithmetic against scipy on fixed numbers, the report
(mean ± interval, per-seed CSV rows, the paired differences: C-JEPA − I-JEPA, the ablation's)
rebuilt from a folder where one run failed and one never finished, and two tiny runs through
Hydra's joblib and submitit-local launchers."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_compare import tiny_overrides

from solo_cjepa.tools.compare.__main__ import main
from solo_cjepa.tools.compare.launchers import Launcher
from solo_cjepa.tools.compare.pipeline import Plan, run_comparison
from solo_cjepa.tools.compare.presets import folder_name
from solo_cjepa.tools.compare.records import save_floors, save_outcome, save_plan
from solo_cjepa.tools.compare.report import run_row
from solo_cjepa.tools.compare.runner import RunOutcome, RunSpec
from solo_cjepa.tools.compare.stats import paired_difference, summarise

VALUES = [71.2, 74.9, 72.6, 70.1]


def test_interval_matches_scipy():
    s = summarise(VALUES)
    low, high = stats.t.interval(0.95, len(VALUES) - 1, np.mean(VALUES), stats.sem(VALUES))
    assert s.n == 4 and s.mean == pytest.approx(np.mean(VALUES))
    assert s.std == pytest.approx(np.std(VALUES, ddof=1))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))
    single = summarise([3.0])
    assert single.mean == 3.0 and single.half_width is None and single.excludes_zero() is None
    assert summarise([]) is None


def test_paired_difference_is_scipys_paired_t_interval():
    a = {0: 80.1, 1: 78.4, 2: 79.9, 7: 50.0}  # seed 7 has no partner: left out
    b = {0: 77.0, 1: 76.9, 2: 78.8}
    d = paired_difference(a, b)
    seeds = [0, 1, 2]
    ci = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).confidence_interval(0.95)
    assert d.n == 3 and (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.excludes_zero() is (ci.low > 0 or ci.high < 0)


def fake_comparison(out: Path):
    """cjepa and ijepa over seeds 0-2 with fixed offline numbers; ijepa's seed 2 failed and
    cjepa's seed 2 never wrote a record (a job still running or killed)."""
    specs = [RunSpec(m, m, seed=s) for s in (0, 1, 2) for m in ("cjepa", "ijepa")]
    out.mkdir()
    save_plan(out, "fake", {"dataset": "none"}, specs)
    save_floors(out, [run_row("raw pixels", "floor", 1.0, offline_logreg_top1=84.0)])
    numbers = {"cjepa": [80.0, 82.0], "ijepa": [76.5, 78.4]}
    for spec in specs:
        folder = out / folder_name(spec)
        folder.mkdir(parents=True)
        if spec.seed < 2:
            top1 = numbers[spec.name][spec.seed]
            offline = {"offline_logreg_top1": top1, "offline_knn_top1": top1 - 1}
            save_outcome(folder, RunOutcome(spec, "ok", 60.0, offline=offline))
        elif spec.name == "ijepa":
            (folder / "train.log").write_text("boom\nRuntimeError: out of memory\n")
            outcome = RunOutcome(spec, "failed (exit 1)", 5.0, log_path=folder / "train.log")
            outcome.error = "RuntimeError: out of memory"
            save_outcome(folder, outcome)
    return specs


def test_report_from_a_folder_with_a_failed_and_an_unfinished_run(tmp_path, capsys):
    out = tmp_path / "runs"
    fake_comparison(out)
    assert main(["report", str(out)]) == 1  # not all runs ok, but a report

    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    cjepa = {r["seed"]: r for r in rows if r["method"] == "cjepa"}
    assert cjepa["0"]["offline_logreg_top1"] == "80.0" and cjepa["2"]["status"] == "not finished"
    assert cjepa["0"]["split"] == "test"  # a record older than data.holdout: the test set
    low, high = stats.t.interval(0.95, 1, 81.0, stats.sem([80.0, 82.0]))
    assert float(cjepa["mean"]["offline_logreg_top1"]) == pytest.approx(81.0)
    assert float(cjepa["std"]["offline_logreg_top1"]) == pytest.approx(np.sqrt(2))
    assert float(cjepa["ci95_low"]["offline_logreg_top1"]) == pytest.approx(low)
    assert float(cjepa["ci95_high"]["offline_logreg_top1"]) == pytest.approx(high)
    paired = {r["seed"]: r for r in rows if r["method"] == "cjepa − ijepa (paired)"}
    assert float(paired["mean"]["offline_logreg_top1"]) == pytest.approx(3.55)  # (3.5 + 3.6) / 2

    report = (out / "report.md").read_text()
    half = (high - low) / 2
    assert f"| 81.0 ± {half:.1f} | 80.0 ± {half:.1f} |" in report
    assert "| ijepa |" in report and "2/3 ok" in report
    assert "## Paired difference cjepa − ijepa" in report
    assert "| offline logreg top-1 | 2 | +3.55 | 0.07 | [+2.91, +4.19] |" in report
    assert "excludes zero (above)" in report
    assert "**cjepa** seed 2 not finished" in report
    assert "**ijepa** seed 2 failed (exit 1): RuntimeError: out of memory" in report
    assert "| raw pixels |" in report
    assert "report.md" in capsys.readouterr().out


def test_ablation_report_gives_the_papers_ordering_as_paired_differences(tmp_path):
    # Table 3's ordering and C-JEPA against VICReg, each as a paired difference over seeds; BYOL
    # did not run, so no difference with it
    from solo_cjepa.tools.compare.presets import method_specs

    out = tmp_path / "ablation"
    entries = method_specs(["vicreg"], "vicreg")
    specs = [replace(spec, seed=s) for s in (0, 1, 2) for spec in entries]
    out.mkdir()
    save_plan(out, "ablation", {"dataset": "none"}, specs)
    untrained = [70.0 + 0.9 * s + 0.1 * s * s - 1.5 for s in range(3)]
    floor = "random init (vit_micro)"
    save_floors(
        out,
        [
            run_row(floor, "floor", 1.0, s, encoder="target", offline_logreg_top1=untrained[s])
            for s in range(3)
        ],
    )
    top1 = {name: [base + 0.9 * s + 0.1 * s * s for s in range(3)] for name, base in (
        ("neither (I-JEPA)", 70.0), ("var/cov only", 71.0), ("invariance only", 70.5),
        ("var/cov + invariance (C-JEPA)", 72.0), ("vicreg", 73.0))}  # fmt: skip
    top1["vicreg"][1] -= 2.0
    for spec in specs:
        folder = out / folder_name(spec)
        folder.mkdir(parents=True)
        encoder = "context" if spec.name == "vicreg" else "target"
        offline = {"offline_logreg_top1": top1[spec.name][spec.seed], "encoder": encoder}
        save_outcome(folder, RunOutcome(spec, "ok", 60.0, offline=offline))
    main(["report", str(out)])

    report = (out / "report.md").read_text()
    both = "var/cov + invariance (C-JEPA)"
    for a, b, mean in (
        (both, "neither (I-JEPA)", 2.0),
        (both, "var/cov only", 1.0),
        ("invariance only", "neither (I-JEPA)", 0.5),
        ("neither (I-JEPA)", floor, 1.5),  # each seed's runs against that seed's untrained ViT
        (both, floor, 3.5),
    ):
        assert f"## Paired difference {a} − {b}" in report
        assert f"| offline logreg top-1 | 3 | {mean:+.2f} | 0.00 |" in report
    ci = stats.ttest_rel(top1[both], top1["vicreg"]).confidence_interval(0.95)
    assert f"## Paired difference {both} − vicreg" in report
    assert f"[{ci.low:+.2f}, {ci.high:+.2f}]" in report
    assert "− byol" not in report and f"vicreg − {floor}" not in report  # another encoder
    assert f"| {floor} |" in report and "3 seeds" in report


def test_report_of_a_folder_that_is_no_comparison(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path)])
    assert stop.value.code == 2 and "plan.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "launcher",
    [Launcher("joblib", n_jobs=2), Launcher("submitit_local")],
    ids=["joblib", "submitit_local"],
)
def test_two_seeds_through_a_hydra_launcher(tmp_path, launcher):
    pytest.importorskip(
        "hydra_plugins.hydra_joblib_launcher"
        if launcher.name == "joblib"
        else "hydra_plugins.hydra_submitit_launcher"
    )
    out = tmp_path / "out"
    spec = RunSpec("cjepa", "cjepa")
    plan = Plan(
        "custom",
        [spec],
        out,
        epochs=1,
        # 10 of the 40 training images held out: the runs and floors score on those
        overrides=[*tiny_overrides(tmp_path), "++data.holdout=0.25"],
        seeds=[0, 1],
        launcher=launcher,
    )
    report = run_comparison(plan)
    runs = [row for row in report.rows if row["method"] == "cjepa"]
    assert [(r["seed"], r["status"]) for r in runs] == [(0, "ok"), (1, "ok")]
    untrained = [row for row in report.rows if row["method"].startswith("random init")]
    assert [(r["seed"], r["status"]) for r in untrained] == [(0, "floor"), (1, "floor")]
    assert {row["split"] for row in report.rows} == {"holdout"}
    assert untrained[0]["feature_rank"] != untrained[1]["feature_rank"]  # each seed's init
    for seed in (0, 1):
        (args,) = (out / "cjepa" / f"seed-{seed}").glob("cjepa/*/args.json")
        assert json.loads(args.read_text())["seed"] == seed  # the seed reached the run
    # the two seeds trained differently, the report shows their mean ± interval
    assert runs[0]["offline_logreg_top1"] is not None
    assert runs[0]["feature_rank"] != runs[1]["feature_rank"]
    assert (
        "| cjepa |" in (out / "report.md").read_text()
        and "2 seeds" in (out / "report.md").read_text()
    )
