"""The benchmarks' own logic on small inputs: how bench.json entries merge, the printed table, the
goal checks, and how a step is measured (seconds, peak memory). No benchmark is run here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tools.bench import data as bench_data
from tools.bench import measure as bench_tools
from tools.bench import quality as bench_quality
from tools.bench import scale as bench_scale


def test_a_benchmark_replaces_its_own_entries_and_keeps_the_others(tmp_path):
    path = tmp_path / "state" / "bench.json"
    bench_tools.write([{"name": "drift_1m", "seconds": 4.0}, {"name": "scale", "seconds": 80.0}], path)
    assert json.loads(path.read_text()) == [{"name": "drift_1m", "seconds": 4.0}, {"name": "scale", "seconds": 80.0}]
    path.write_text(json.dumps([*json.loads(path.read_text()), {"note": "written by hand"}]))

    bench_tools.write([{"name": "scale", "seconds": 77.0}, {"name": "tuning_resume", "lost_trials": 0}], path)
    assert json.loads(path.read_text()) == [
        {"name": "drift_1m", "seconds": 4.0},  # another benchmark's entry stays as it was
        {"note": "written by hand"},
        {"name": "scale", "seconds": 77.0},  # replaced, not repeated
        {"name": "tuning_resume", "lost_trials": 0},
    ]


def test_the_table_has_a_row_per_figure_and_nested_figures_by_their_path():
    text = bench_tools.table([{"name": "scale", "seconds": 77.0, "steps": {"load_data": 3.1, "train_model": 35.0}},
                              {"name": "drift_1m", "verdicts_agree": True}])
    rows = [line.split() for line in text.splitlines()[2:]]
    assert rows == [["scale", "seconds", "77.0"], ["scale", "steps.load_data", "3.1"],
                    ["scale", "steps.train_model", "35.0"], ["drift_1m", "verdicts_agree", "True"]]
    assert text.splitlines()[0].split() == ["benchmark", "figure", "value"]


def test_timed_returns_the_value_and_the_memory_it_holds():
    value, seconds, mb = bench_tools.timed(lambda: np.ones(16 * 2**20))  # 128 MB, every page written
    assert value.shape == (16 * 2**20,) and seconds >= 0.0
    assert 100.0 <= mb <= 400.0, mb


def test_latency_calls_are_interleaved_and_alternate_their_order():
    from tools.bench.main import _latency_stats

    seen = []
    calls = {"server": lambda batch: seen.append(("server", tuple(batch))),
             "inproc": lambda batch: seen.append(("inproc", tuple(batch)))}
    stats = _latency_stats(calls, [[1], [2, 3]], repeats=4)
    assert seen == [("server", (1,)), ("inproc", (1,)),  # the warm-up
                    ("server", (1,)), ("inproc", (1,)), ("inproc", (2, 3)), ("server", (2, 3)),
                    ("server", (1,)), ("inproc", (1,)), ("inproc", (2, 3)), ("server", (2, 3))]
    assert set(stats) == {"server", "inproc"}
    assert all(s["p50_ms"] <= s["p99_ms"] and s["rows_per_s"] > 0 for s in stats.values())


def _step(seconds: float, rss: float, **metrics) -> dict:
    return {"seconds": seconds, "peak_rss_mb": rss, "metrics": metrics}


STEPS = {
    "load_data": _step(3.0, 400.0),
    "validate_data": _step(9.2, 700.0, success_percent=100.0),
    "train_model": _step(35.1, 1100.0, rows_tuning_train=20000, rows_tuning_validation=4000, rows_final_train=850000,
                         trials=4),
    "evaluate_model": _step(8.0, 900.0, roc_auc=0.90412, baseline_roc_auc=0.88549),
    "register_model": _step(6.0, 500.0, version="1"),
    "deploy_model": _step(16.0, 600.0, rollout="created"),
}


def test_a_size_sums_its_steps_and_keeps_the_largest_process():
    entry = bench_scale.size_entry(1_000_000, STEPS)
    assert entry["rows"] == 1_000_000 and entry["seconds"] == 77.3 and entry["peak_step_rss_mb"] == 1100.0
    assert entry["steps"]["train_model"] == {"seconds": 35.1, "peak_rss_mb": 1100.0}
    assert list(entry["steps"]) == list(bench_scale.STEPS)
    assert entry["rows_per_phase"] == {"tuning_train": 20000, "tuning_validation": 4000, "final_train": 850000}
    assert (entry["holdout_roc_auc"], entry["baseline_roc_auc"], entry["rollout"]) == (0.9041, 0.8855, "created")


@pytest.mark.parametrize(("seconds", "rss", "met"), [(77.3, 1100.0, True), (360.0, 3072.0, True),
                                                      (360.1, 1100.0, False), (77.3, 3072.5, False)])
def test_the_scale_goal_is_judged_at_one_million_rows(seconds, rss, met):
    small = {"seconds": 9999.0, "peak_step_rss_mb": 9999.0}  # far off the goal, but not the size it is judged at
    entry = bench_scale.scale_entry({"10000": small, "1000000": {"seconds": seconds, "peak_step_rss_mb": rss}},
                                    load_average=1.2)
    assert (entry["seconds_1m"], entry["peak_step_rss_mb"], entry["goal_met"]) == (seconds, rss, met)
    assert entry["name"] == "scale" and entry["load_average"] == 1.2 and set(entry["sizes"]) == {"10000", "1000000"}


def test_without_one_million_rows_there_is_no_verdict():
    entry = bench_scale.scale_entry({"10000": {"seconds": 9.0, "peak_step_rss_mb": 300.0}}, load_average=0.5)
    assert "goal_met" not in entry and "seconds_1m" not in entry


@pytest.mark.parametrize(("sample", "every_row", "gap", "met"),
                         [(0.900, 0.904, 0.004, True), (0.900, 0.905, 0.005, True), (0.900, 0.9051, 0.0051, False),
                          (0.910, 0.900, -0.01, True)])
def test_the_sample_goal_is_the_auc_gap_to_tuning_on_every_row(sample, every_row, gap, met):
    entry = bench_scale.sample_entry({"sample": {"holdout_roc_auc": sample}, "every_row": {"holdout_roc_auc": every_row}},
                                     load_average=1.0)
    assert entry["auc_gap"] == pytest.approx(gap) and entry["goal_met"] is met


@pytest.mark.parametrize(
    ("loopline", "met"),
    [({"roc_auc": 0.885, "accuracy": 0.94}, True),  # level with the logistic regression
     ({"roc_auc": 0.880, "accuracy": 0.92}, True),  # at every tolerance
     ({"roc_auc": 0.8799, "accuracy": 0.94}, False),  # ROC AUC more than 0.005 below the LR
     ({"roc_auc": 0.885, "accuracy": 0.9199}, False)],  # accuracy more than 0.02 below the LR
)
def test_the_model_quality_goal(loopline, met):
    lr, histgb = {"roc_auc": 0.885, "accuracy": 0.94}, {"roc_auc": 0.889, "accuracy": 0.95}
    found = bench_quality.comparison(loopline, lr, histgb)
    assert found["goal_met"] is met
    assert found["auc_vs_lr"] == round(loopline["roc_auc"] - 0.885, 4)


def test_the_model_quality_goal_against_gradient_boosting():
    lr = {"roc_auc": 0.80, "accuracy": 0.90}
    assert bench_quality.comparison({"roc_auc": 0.90, "accuracy": 0.9}, lr, {"roc_auc": 0.91, "accuracy": 0.9})["goal_met"]
    far = bench_quality.comparison({"roc_auc": 0.90, "accuracy": 0.9}, lr, {"roc_auc": 0.9101, "accuracy": 0.9})
    assert far["auc_vs_histgb"] == -0.0101 and far["goal_met"] is False


@pytest.mark.parametrize(("ratio", "speedup", "met"), [(1.0, 23.0, True), (2.0, 10.0, True), (2.01, 23.0, False),
                                                       (1.0, 9.9, False)])
def test_the_drift_targets(ratio, speedup, met):
    assert bench_data.drift_targets_met(ratio, speedup) is met


def test_loopline_drift_statistics_equal_the_plain_numpy_scipy_ones_on_a_small_frame():
    from loopline import drift

    reference = bench_data.wide_frame(3000, seed=1)
    current = bench_data.wide_frame(3000, seed=2, shifted=True)
    result = drift.compute(reference, current, bench_data._kinds(reference), drift.DriftSettings())
    plain = bench_data.plain_psi_ks(reference, current)
    assert bench_data.same_psi_ks(result.features, plain)
    assert sorted(result.drifted_features) == sorted(bench_data.SHIFTED)
    off = {**plain, "num_03": {**plain["num_03"], "psi": plain["num_03"]["psi"] + 1e-6}}
    assert not bench_data.same_psi_ks(result.features, off)


def test_the_corrupted_batch_holds_the_faults_it_names():
    batch, clean = bench_data.corrupted_batch(2000, seed=3), bench_data.wide_frame(2000, seed=3)
    assert (batch["num_02"] == 1e6).sum() == 60 and np.isinf(batch["num_03"]).sum() == 2
    assert batch["num_01"].isna().sum() == 40 and (batch["cat_0"] == "cat_new").sum() == 10
    untouched = [c for c in clean.columns if c not in ("num_01", "num_02", "num_03", "cat_0")]
    assert batch[untouched].equals(clean[untouched])


def test_a_step_is_measured_in_its_own_process(tmp_path):
    from loopline.data.demo import demo_transactions

    demo_transactions(400, seed=7).to_csv(tmp_path / "data.csv", index=False)
    measured = bench_scale._measure("load_data", tmp_path)
    assert measured["metrics"] == {} and (tmp_path / "load_data.json").is_file()
    assert all((tmp_path / name).is_file() for name in ("train", "validation", "holdout"))  # the step's outputs
    assert measured["seconds"] > 0 and 50.0 < measured["peak_rss_mb"] < 4096.0  # the step's process, not this one


def test_a_failing_step_names_itself_and_its_folder(tmp_path):
    with pytest.raises(RuntimeError, match=rf"step validate_data failed at {tmp_path} \(status"):
        bench_scale._measure("validate_data", tmp_path)  # no splits to validate
