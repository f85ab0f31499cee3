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
from solo_cjepa.tools.compare.records import load_outcome, save_floors, save_outcome, save_plan
from solo_cjepa.tools.compare.report import floor_numbers, run_row
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
    """cjepa and ijepa over seeds 0-2 with fixed offline numbers in records as written before
    both encoders were evaluated (one encoder's numbers); ijepa's seed 2 failed and cjepa's seed
    2 never wrote a record (a job still running or killed)."""
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
    # an old cjepa record's one encoder is its target encoder; it was scored on the test set
    assert cjepa["0"]["offline_logreg_top1_target"] == "80.0"
    assert cjepa["0"]["offline_logreg_top1_context"] == "" and cjepa["0"]["split"] == "test"
    assert cjepa["2"]["status"] == "not finished"
    low, high = stats.t.interval(0.95, 1, 81.0, stats.sem([80.0, 82.0]))
    assert float(cjepa["mean"]["offline_logreg_top1_target"]) == pytest.approx(81.0)
    assert float(cjepa["std"]["offline_logreg_top1_target"]) == pytest.approx(np.sqrt(2))
    assert float(cjepa["ci95_low"]["offline_logreg_top1_target"]) == pytest.approx(low)
    assert float(cjepa["ci95_high"]["offline_logreg_top1_target"]) == pytest.approx(high)
    paired = {r["seed"]: r for r in rows if r["method"] == "cjepa − ijepa (paired)"}
    assert float(paired["mean"]["offline_logreg_top1_target"]) == pytest.approx(3.55)
    pixels = next(r for r in rows if r["method"] == "raw pixels")  # an old floor: both encoders
    assert pixels["offline_logreg_top1_target"] == pixels["offline_logreg_top1_context"] == "84.0"

    report = (out / "report.md").read_text()
    half = (high - low) / 2
    assert f"| 81.0 ± {half:.1f} | 80.0 ± {half:.1f} |" in report
    assert "| ijepa |" in report and "2/3 ok" in report
    assert "## Paired difference cjepa − ijepa" in report
    assert "| target: offline logreg top-1 | 2 | +3.55 | 0.07 | [+2.91, +4.19] |" in report
    section = report.split("## Paired difference cjepa − ijepa")[1].split("## ")[0]
    assert "context: offline" not in section  # no context numbers in the old records
    assert "excludes zero (above)" in report
    assert "**cjepa** seed 2 not finished" in report
    assert "**ijepa** seed 2 failed (exit 1): RuntimeError: out of memory" in report
    assert "| raw pixels |" in report
    assert "report.md" in capsys.readouterr().out


def test_ablation_report_gives_the_papers_ordering_as_paired_differences(tmp_path):
    # Table 3's ordering and C-JEPA against VICReg, each as a paired difference over seeds; BYOL
    # did not run, so no difference with it. Run records as written before both encoders were
    # evaluated, floors re-evaluated since (as docs/study's were)
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
            run_row(
                floor,
                "floor",
                1.0,
                s,
                ssl_method="cjepa",
                **floor_numbers({"offline_logreg_top1": top1}),
            )
            for s, top1 in enumerate(untrained)
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
        assert f"| target: offline logreg top-1 | 3 | {mean:+.2f} | 0.00 |" in report
    ci = stats.ttest_rel(top1[both], top1["vicreg"]).confidence_interval(0.95)
    assert f"## Paired difference {both} − vicreg" in report
    assert f"[{ci.low:+.2f}, {ci.high:+.2f}]" in report  # C-JEPA's target against VICReg's one
    assert "vicreg has one encoder (context): the target rows compare with it." in report
    assert "− byol" not in report and f"vicreg − {floor}" not in report  # another encoder
    assert f"| {floor} |" in report and "3 seeds" in report


def test_both_encoders_and_their_paired_differences(tmp_path):
    # this version's records: every encoder a run has (VICReg: context only), and floors that
    # count for both encoders; numbers chosen so that each difference is known in advance
    out = tmp_path / "both"
    specs = [RunSpec(m, m, seed=s) for s in range(3) for m in ("cjepa", "ijepa", "vicreg", "byol")]
    out.mkdir()
    save_plan(out, "both", {"dataset": "none"}, specs)
    floor = "random init (vit_micro)"
    base = [60.0, 61.5, 59.0]  # per seed: what the seed's untrained ViT scores
    save_floors(out, [
        run_row(floor, "floor", 1.0, s, ssl_method="cjepa", split="test",
                **floor_numbers({"offline_logreg_top1": base[s], "feature_rank": 5.0}))
        for s in range(3)
    ])  # fmt: skip
    # entry: (method, gain of the target encoder, gain of the context encoder) over the floor
    gains = {"cjepa": ("cjepa", 3.0, 8.0), "ijepa": ("cjepa", 1.0, 2.0),
             "vicreg": ("vicreg", None, 10.0), "byol": ("byol", 4.0, 6.0)}  # fmt: skip
    noise = [0.0, 0.3, -0.2]
    for spec in specs:
        method, target, context = gains[spec.name]
        numbers = {"ssl_method": method, "split": "test"}
        for encoder, gain in (("target", target), ("context", context)):
            if gain is not None:
                top1 = base[spec.seed] + gain + noise[spec.seed] * (spec.name == "cjepa")
                numbers[f"offline_logreg_top1_{encoder}"] = top1
                numbers[f"feature_rank_{encoder}"] = 5.0 + gain
        folder = out / folder_name(spec)
        folder.mkdir(parents=True)
        save_outcome(folder, RunOutcome(spec, "ok", 60.0, offline=numbers))
    main(["report", str(out)])

    report = (out / "report.md").read_text()
    sections = {part.split("\n")[0]: part for part in report.split("## Paired difference ")[1:]}

    def row(pair, metric):
        line = next(
            line for line in sections[pair].splitlines() if line.startswith(f"| {metric} |")
        )
        return line.split(" | ")[2:4]  # mean difference, std

    # cjepa − ijepa, per encoder: target 3 − 1, context 8 − 2, plus cjepa's noise (mean 1/30)
    assert row("cjepa − ijepa", "target: offline logreg top-1")[0] == f"{2 + 0.1 / 3:+.2f}"
    assert row("cjepa − ijepa", "context: offline logreg top-1")[0] == f"{6 + 0.1 / 3:+.2f}"
    assert row("cjepa − ijepa", "context: effective rank") == ["+6.00", "0.00"]
    # VICReg's one encoder is compared with both of C-JEPA's
    assert row("cjepa − vicreg", "target: effective rank") == ["-7.00", "0.00"]
    assert row("cjepa − vicreg", "context: effective rank") == ["-2.00", "0.00"]
    assert "vicreg has one encoder (context)" in sections["cjepa − vicreg"]
    assert row("cjepa − byol", "target: effective rank") == ["-1.00", "0.00"]
    assert "has one encoder" not in sections["cjepa − byol"]
    # each seed's untrained ViT, for both encoders of the runs of its method (cjepa) only
    assert row(f"ijepa − {floor}", "target: offline logreg top-1") == ["+1.00", "0.00"]
    assert row(f"ijepa − {floor}", "context: offline logreg top-1") == ["+2.00", "0.00"]
    assert f"byol − {floor}" not in sections and f"vicreg − {floor}" not in sections
    # the offline table: C-JEPA's two groups, VICReg's target group empty, the floor in both
    offline = report.split("## Offline evaluation")[1]
    assert "| vicreg | – | – | – | 70.2 ± " in offline
    assert (
        f"| {floor} | 60.2 ± 3.1 | – | 5.0 ± 0.0 | 60.2 ± 3.1 | – | 5.0 ± 0.0 | test |" in offline
    )
    with open(out / "report.csv") as f:
        paired = [r for r in csv.DictReader(f) if r["method"] == "cjepa − vicreg (paired)"]
    assert float(paired[0]["feature_rank_target"]) == pytest.approx(-7.0)


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
    assert untrained[0]["feature_rank_context"] != untrained[1]["feature_rank_context"]
    for seed in (0, 1):
        (args,) = (out / "cjepa" / f"seed-{seed}").glob("cjepa/*/args.json")
        assert json.loads(args.read_text())["seed"] == seed  # the seed reached the run
    # the two seeds trained differently, the report shows their mean ± interval
    assert runs[0]["offline_logreg_top1_target"] is not None
    assert runs[0]["feature_rank_target"] != runs[1]["feature_rank_target"]
    assert (
        "| cjepa |" in (out / "report.md").read_text()
        and "2 seeds" in (out / "report.md").read_text()
    )


def test_records_find_their_runs_after_the_folder_moves(tmp_path):
    """Run folders and logs are recorded relative to the comparison's folder, so a committed or
    moved study still rebuilds its report (metrics curves included)."""
    out = tmp_path / "study"
    spec = RunSpec("cjepa", "cjepa", seed=0)
    folder = out / folder_name(spec)
    run_dir = folder / "cjepa" / "csv-run"
    run_dir.mkdir(parents=True)
    (folder / "train.log").write_text("")
    save_outcome(
        folder, RunOutcome(spec, "ok", 60.0, run_dir=run_dir, log_path=folder / "train.log")
    )
    record = json.loads((folder / "run.json").read_text())
    assert record["run_dir"] == "cjepa/seed-0/cjepa/csv-run"
    moved = tmp_path / "elsewhere"
    out.rename(moved)
    outcome = load_outcome(moved, spec)
    assert outcome.run_dir == moved / "cjepa/seed-0/cjepa/csv-run" and outcome.run_dir.is_dir()
    assert outcome.log_path.is_file()
