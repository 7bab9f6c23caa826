"""Component interfaces: each component's `python_func` with real KFP artifacts on a tmp path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import dsl

from loopline import components, registry
from loopline.core.errors import DataError, GateConfigError, ValidationFailed
from loopline.serving import server as serving

from .conftest import FAST_SEARCH_SPACE, art
from .conftest import evaluate_step as _evaluate
from .conftest import register_step as _register


def test_load_data_writes_splits_with_lineage_metadata(loaded, demo_csv):
    import hashlib

    sha = hashlib.sha256(demo_csv.read_bytes()).hexdigest()
    total = sum(a.metadata["rows"] for a in loaded.values())
    assert total == 2000
    assert all(a.metadata["source_sha256"] == sha and Path(a.path).is_file() for a in loaded.values())


def test_load_data_bad_target_fails_before_writing(tmp_path, demo_csv):
    outs = {n: art(dsl.Dataset, tmp_path, n) for n in ("train", "validation", "holdout")}
    with pytest.raises(DataError, match="target column 'label' not found"):
        components.load_data.python_func(data_uri=str(demo_csv), target="label", **outs)
    assert not any(Path(a.path).exists() for a in outs.values())


def _validation_outputs(tmp_path):
    return {k: art(cls, tmp_path, k) for k, cls in
            (("report", dsl.HTML), ("metrics", dsl.Metrics), ("summary", dsl.Markdown), ("result", dsl.Artifact))}


def test_validate_data_passes_and_reports(loaded, tmp_path):
    import json

    outs = _validation_outputs(tmp_path)
    passed = components.validate_data.python_func(**loaded, **outs, fail_on_error=True)
    assert passed is True
    metrics = outs["metrics"].metadata
    assert metrics["expectations_failed"] == 0 and metrics["success_percent"] == 100.0
    assert metrics["skew_score"] == 0.0 and metrics["failed_critical"] == 0 and metrics["failed_warning"] == 0
    assert metrics["rows"] == sum(a.metadata["rows"] for a in loaded.values())
    assert "Data validation: passed" in Path(outs["report"].path).read_text()
    assert "## Data validation: pass" in Path(outs["summary"].path).read_text()
    result = json.loads(Path(outs["result"].path).read_text())
    assert result["passed"] is True and result["outcome"] == "pass" and result["failures"] == []
    assert [s["name"] for s in result["splits"]] == ["train", "validation", "holdout"]
    assert outs["result"].metadata["outcome"] == "pass"


def test_validate_data_names_the_failed_expectation(loaded, tmp_path):
    import json

    import pandas as pd

    from loopline.data.tables import read_split, write_split

    holdout, spec = read_split(loaded["holdout"].path)
    holdout["amount"] = holdout["amount"] * 1000  # far outside the training range
    write_split(holdout, spec, loaded["holdout"].path)
    outs = _validation_outputs(tmp_path)
    with pytest.raises(ValidationFailed, match=r"holdout: expect_column_values_to_be_between\(amount\) \[critical\]"):
        components.validate_data.python_func(**loaded, **outs, fail_on_error=True)
    assert isinstance(pd.read_parquet(loaded["holdout"].path), pd.DataFrame)
    # every output is written before the step fails, for a person and for other steps to read
    result = json.loads(Path(outs["result"].path).read_text())
    assert result["outcome"] == "block" and result["passed"] is False
    assert {"expectation": "expect_column_values_to_be_between", "column": "amount", "severity": "critical",
            "split": "holdout"}.items() <= result["failures"][0].items()
    assert outs["metrics"].metadata["failed_critical"] >= 1
    assert "| holdout | amount | expect_column_values_to_be_between | critical |" in Path(outs["summary"].path).read_text()


def test_validate_data_report_only_returns_false(loaded, tmp_path):
    from loopline.data.tables import read_split, write_split

    holdout, spec = read_split(loaded["holdout"].path)
    write_split(holdout.drop(columns=["channel"]), spec, loaded["holdout"].path)
    outs = _validation_outputs(tmp_path)
    assert components.validate_data.python_func(**loaded, **outs, fail_on_error=False) is False
    assert outs["report"].metadata["outcome"] == "block"


def test_train_model_outputs_a_model_and_its_metrics(loaded, tmp_path):
    model, metrics = art(dsl.Model, tmp_path, "model"), art(dsl.Metrics, tmp_path, "metrics")
    best_params, report = art(dsl.Artifact, tmp_path, "best_params"), art(dsl.HTML, tmp_path, "report")
    components.train_model.python_func(
        train=loaded["train"], validation=loaded["validation"], model=model, metrics=metrics,
        best_params=best_params, report=report,
        n_trials=1, max_epochs=2, timeout_seconds=0.0, search_space=FAST_SEARCH_SPACE, seed=1,
    )
    assert (Path(model.path) / "1" / "saved_model.pb").is_file()
    assert model.metadata["framework"] == "tensorflow" and model.metadata["classes"] == ["0", "1"]
    assert 0.0 <= metrics.metadata["best_validation_roc_auc"] <= 1.0 and metrics.metadata["trials"] == 1
    assert metrics.metadata["final_epochs"] >= 1 and "final_loss" in metrics.metadata
    best = json.loads(Path(best_params.path).read_text())
    assert best["params"] == model.metadata["best_params"] and best["objective"] == "roc_auc"
    assert "Optimization history" in Path(report.path).read_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"timeout_seconds": -5.0}, "timeout_seconds must be 0"), ({"storage_url": "mongodb://db/x"}, "not a database URL"),
     ({"objective": "recall"}, "objective 'recall'")],
)
def test_train_model_bad_settings_fail_before_any_work(loaded, tmp_path, kwargs, message):
    from loopline.core.errors import TuningConfigError

    outs = {k: art(cls, tmp_path, k) for k, cls in
            (("model", dsl.Model), ("metrics", dsl.Metrics), ("best_params", dsl.Artifact), ("report", dsl.HTML))}
    with pytest.raises(TuningConfigError, match=message):
        components.train_model.python_func(train=loaded["train"], validation=loaded["validation"], **outs, **kwargs)
    assert not any(Path(a.path).exists() for a in outs.values())


def test_train_model_finds_a_corrupt_store_before_training(loaded, tmp_path):
    """In a cluster the training step is the first to reach MLflow: a store it cannot use is one
    line naming the URI, before any trial runs."""
    from loopline.core.errors import RegistryError

    store = tmp_path / "mlflow.db"
    store.write_bytes(b"this is not a database, just bytes\n" * 4)
    outs = {k: art(cls, tmp_path, k) for k, cls in
            (("model", dsl.Model), ("metrics", dsl.Metrics), ("best_params", dsl.Artifact), ("report", dsl.HTML))}
    with pytest.raises(RegistryError) as info:
        components.train_model.python_func(train=loaded["train"], validation=loaded["validation"], **outs,
                                           tracking_uri=f"sqlite:///{store}", n_trials=1, max_epochs=1)
    assert str(info.value) == f"the MLflow store sqlite:///{store} is not an SQLite database (corrupt or another kind of file)"
    assert not any(Path(a.path).exists() for a in outs.values())


def test_evaluate_model_gate_passes_and_logs_visualizations(trained_model, loaded, tmp_path):
    import json

    passed, outs = _evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.6})
    assert passed is True
    metrics = outs["metrics"].metadata
    assert metrics["roc_auc"] > 0.6 and metrics["gate_passed"] == 1.0
    for key in ("precision_0", "recall_1", "f1_1", "brier", "log_loss", "latency_single_p95_ms", "latency_batch_p50_ms"):
        assert key in metrics, key
    assert metrics["latency_single_p50_ms"] <= metrics["latency_single_p95_ms"]
    assert metrics["model_size_bytes"] > 10_000
    cm = outs["classification_metrics"].metadata
    assert [a["displayName"] for a in cm["confusionMatrix"]["annotationSpecs"]] == ["0", "1"]
    assert sum(sum(row["row"]) for row in cm["confusionMatrix"]["rows"]) == loaded["holdout"].metadata["rows"]
    assert cm["confidenceMetrics"]
    assert "Evaluation gate: PASSED" in Path(outs["report"].path).read_text()
    record = json.loads(Path(outs["blessing"].path).read_text())
    assert record["blessed"] is True and record["model_uri"] == str(trained_model)
    assert record["holdout_sha256"] == outs["blessing"].metadata["holdout_sha256"]
    assert record["champion"]["status"] == "not_looked_up" and record["champion"]["metrics"] == {}
    assert "Champion: not looked up (no tracking_uri and model_name given)" in Path(outs["report"].path).read_text()


def test_evaluate_model_gate_fails_on_a_missed_threshold(trained_model, loaded, tmp_path):
    import json

    passed, outs = _evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.999})
    assert passed is False
    report = Path(outs["report"].path).read_text()
    assert "| absolute | roc_auc |" in report and "| FAIL |" in report
    assert json.loads(Path(outs["blessing"].path).read_text())["blessed"] is False


def test_evaluate_model_without_thresholds_is_an_error(trained_model, loaded, tmp_path):
    with pytest.raises(GateConfigError, match="no gate thresholds"):
        _evaluate(trained_model, loaded, tmp_path, {})


def test_relative_gates_need_the_registry(trained_model, loaded, tmp_path):
    with pytest.raises(GateConfigError, match="relative gates compare with the champion"):
        _evaluate(trained_model, loaded, tmp_path, {"relative": {"min_improvement": 0.0}})


def test_latency_and_fairness_gates_pass_and_fail_on_the_real_model(trained_model, loaded, tmp_path):
    loose = {"latency": {"max_single_row_p95_ms": 10_000},
             "fairness": {"slice_column": "channel", "max_demographic_parity_difference": 1.0, "max_auc_gap": 1.0}}
    passed, outs = _evaluate(trained_model, loaded, tmp_path / "loose", loose)
    assert passed is True
    report = Path(outs["report"].path).read_text()
    assert "### Slices of `channel`" in report and "| online |" in report
    tight = {"latency": {"max_single_row_p95_ms": 0.001},
             "fairness": {"slice_column": "channel", "max_auc_gap": 0.0, "min_slice_rows": 10}}
    passed, outs = _evaluate(trained_model, loaded, tmp_path / "tight", tight)
    assert passed is False
    failed = [line for line in Path(outs["report"].path).read_text().splitlines() if "| FAIL |" in line]
    assert [line.split(" | ")[0:2] for line in failed] == [["| latency", "latency_single_p95_ms"], ["| fairness", "slice_auc_gap"]]


def test_a_holdout_missing_a_column_is_named(trained_model, loaded, tmp_path):
    from loopline.data.tables import read_split, write_split

    holdout, spec = read_split(loaded["holdout"].path)
    write_split(holdout.drop(columns=["amount"]), spec, loaded["holdout"].path)
    with pytest.raises(DataError, match="lacks column\\(s\\) the challenger needs: amount$"):
        _evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.6})
    with pytest.raises(DataError, match="slice column 'region' is not in the holdout split"):
        _evaluate(trained_model, loaded, tmp_path, {"fairness": {"slice_column": "region", "max_auc_gap": 0.2}})


def test_a_corrupted_model_artifact_is_a_clear_error(trained_model, loaded, tmp_path):
    import shutil

    from loopline.core.errors import ModelError

    broken = tmp_path / "broken"
    shutil.copytree(trained_model, broken)
    (broken / "1" / "saved_model.pb").write_bytes(b"\x00 this is not a SavedModel")
    with pytest.raises(ModelError, match="cannot load the challenger") as excinfo:
        _evaluate(broken, loaded, tmp_path, {"roc_auc": 0.6})
    assert "\n" not in str(excinfo.value)


def test_register_then_deploy_locally_moves_champion(trained_model, loaded, tmp_path):
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    _, outs = _evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.6})
    version = _register(trained_model, loaded, tmp_path, tracking_uri, outs["blessing"], extra_tags={"team": "risk"})
    assert version == "1"
    assert registry.aliases(tracking_uri, "fraud") == {"challenger": "1"}
    assert registry.version_tags(tracking_uri, "fraud", "1")["team"] == "risk"

    manifest, report = art(dsl.Artifact, tmp_path, "manifest"), art(dsl.Markdown, tmp_path, "report")
    action = components.deploy_model.python_func(
        model_name="fraud", model_version=version, tracking_uri=tracking_uri, holdout=loaded["holdout"],
        manifest=manifest, report=report, target="local", namespace="ml", storage_uri="", pipeline_run="test-run",
        local_home=str(home),
    )
    try:
        assert action == "created"
        url = report.metadata["endpoint"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/models/fraud:predict")
        assert "Rollout of version 1: CREATED" in Path(report.path).read_text()
        assert registry.aliases(tracking_uri, "fraud") == {"challenger": "1", "champion": "1"}
        text = Path(manifest.path).read_text()
        assert "kind: InferenceService" in text and text.startswith("# Local record, not for a cluster")
        assert manifest.metadata["for_cluster"] is False and manifest.metadata["storage_uri"].startswith("file://")
        assert [p.name for p in (home / "manifests").iterdir()] == ["fraud-v1.local-record.yaml"]
        state = serving.read_state(home, "fraud")
        assert state and serving.is_alive(state)
        # a cluster target cannot serve files the registry keeps on this machine's disk
        from loopline.core.errors import DeploymentError

        with pytest.raises(DeploymentError, match="which KServe cannot read"):
            components.deploy_model.python_func(
                model_name="fraud", model_version=version, tracking_uri=tracking_uri, holdout=loaded["holdout"],
                manifest=manifest, report=report, target="kserve", local_home=str(home),
            )
        assert registry.aliases(tracking_uri, "fraud")["champion"] == "1"
    finally:
        state = serving.read_state(home, "fraud")
        if state:
            serving.stop_server(state)


def test_registration_refuses_a_model_whose_blessing_does_not_match(trained_model, loaded, tmp_path):
    import shutil

    from mlflow import MlflowClient

    from loopline.core.errors import BlessingError
    from loopline.data.tables import read_split, write_split

    tracking_uri = registry.local_tracking_uri(tmp_path / "home")
    _, failed = _evaluate(trained_model, loaded, tmp_path / "failed", {"roc_auc": 0.999})
    with pytest.raises(BlessingError, match="not blessed by the evaluation gate \\(roc_auc"):
        _register(trained_model, loaded, tmp_path, tracking_uri, failed["blessing"])

    _, blessed = _evaluate(trained_model, loaded, tmp_path / "blessed", {"roc_auc": 0.6})
    other = tmp_path / "other-model"
    shutil.copytree(trained_model, other)
    with pytest.raises(BlessingError, match="issued for model .* not .*other-model"):
        _register(other, loaded, tmp_path, tracking_uri, blessed["blessing"])

    moved = tmp_path / "moved"
    shutil.copytree(trained_model, moved)
    _, judged = _evaluate(moved, loaded, tmp_path / "judged", {"roc_auc": 0.6})
    (moved / "loopline_model.json").write_text((moved / "loopline_model.json").read_text() + " ")
    with pytest.raises(BlessingError, match="changed since it was judged"):
        _register(moved, loaded, tmp_path, tracking_uri, judged["blessing"])

    holdout, spec = read_split(loaded["holdout"].path)
    write_split(holdout.head(len(holdout) - 1), spec, loaded["holdout"].path)
    with pytest.raises(BlessingError, match="another holdout"):
        _register(trained_model, loaded, tmp_path, tracking_uri, blessed["blessing"])
    with pytest.raises(BlessingError, match="no blessing at"):
        _register(trained_model, loaded, tmp_path, tracking_uri, art(dsl.Artifact, tmp_path, "never-written"))
    assert MlflowClient(tracking_uri).search_registered_models() == []


def test_deploy_model_bad_target_is_refused_before_any_work(loaded, tmp_path):
    from loopline.core.errors import DeploymentError

    with pytest.raises(DeploymentError, match="target must be one of 'local', 'kserve', 'vertex', got 'cluster'"):
        components.deploy_model.python_func(
            model_name="fraud", model_version="1", tracking_uri="sqlite:///x.db", holdout=loaded["holdout"],
            manifest=art(dsl.Artifact, tmp_path, "manifest"), report=art(dsl.Markdown, tmp_path, "report"),
            target="cluster",
        )


def _drift_outputs(tmp_path):
    return {k: art(cls, tmp_path, k) for k, cls in
            (("report", dsl.HTML), ("metrics", dsl.Metrics), ("summary", dsl.Markdown), ("table", dsl.Artifact))}


def test_detect_drift_flags_a_shifted_batch_and_not_the_same_one(tmp_path, demo_csv):
    import json

    from loopline.data.demo import demo_transactions

    shifted = tmp_path / "shifted.csv"
    demo_transactions(2000, shift=1.0, seed=8).to_csv(shifted, index=False)
    same = tmp_path / "same.csv"
    demo_transactions(2000, shift=0.0, seed=9).to_csv(same, index=False)
    results = {}
    for name, current in (("shifted", shifted), ("same", same)):
        outs = _drift_outputs(tmp_path / name)
        drifted = components.detect_drift.python_func(
            reference_data_uri=str(demo_csv), current_data_uri=str(current), target="is_fraud",
            ignore_columns=["transaction_id"], feature_kinds={}, drift_share=0.5, **outs,
        )
        results[name] = (drifted, outs)
    assert results["shifted"][0] is True and results["same"][0] is False
    shifted_outs = results["shifted"][1]
    assert shifted_outs["metrics"].metadata["share_drifted"] >= 0.5
    assert "drift_amount" in shifted_outs["metrics"].metadata and "psi_channel" in shifted_outs["metrics"].metadata
    page = Path(shifted_outs["report"].path).read_text()
    assert len(page) > 10_000 and "Loopline drift verdict: DRIFTED" in page
    assert "| amount |" in Path(shifted_outs["summary"].path).read_text()
    table = json.loads(Path(shifted_outs["table"].path).read_text())
    assert table["drifted"] is True and table["features"]["amount"]["drifted"] is True
    assert set(table["features"]) == {"amount", "hour", "account_age_days", "tx_last_24h", "distance_km",
                                      "merchant_category", "channel"}


def test_detect_drift_current_missing_a_column_is_named(tmp_path, demo_csv):
    import pandas as pd

    current = tmp_path / "current.csv"
    pd.read_csv(demo_csv).drop(columns=["channel"]).to_csv(current, index=False)
    outs = _drift_outputs(tmp_path)
    with pytest.raises(DataError, match="missing from the current data: channel"):
        components.detect_drift.python_func(
            reference_data_uri=str(demo_csv), current_data_uri=str(current), target="is_fraud",
            ignore_columns=["transaction_id"], **outs,
        )
    assert not Path(outs["report"].path).exists()


def test_detect_drift_reference_defaults_to_the_champions_training_data(tmp_path, demo_csv, trained_model, loaded):
    """The reference window is the data the champion was trained on, as recorded at registration."""
    from loopline.data.demo import demo_transactions

    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    _, judged = _evaluate(trained_model, loaded, tmp_path / "judged", {"roc_auc": 0.6})
    version = _register(trained_model, loaded, tmp_path, tracking_uri, judged["blessing"], pipeline_run="run-1")
    registry.set_alias(tracking_uri, "fraud", registry.CHAMPION, version)
    assert registry.champion_data_uri(tracking_uri, "fraud") == str(demo_csv)
    current = tmp_path / "current.csv"
    demo_transactions(3000, shift=1.0, seed=8).to_csv(current, index=False)
    outs = _drift_outputs(tmp_path)
    drifted = components.detect_drift.python_func(
        current_data_uri=str(current), target="is_fraud", tracking_uri=tracking_uri, model_name="fraud",
        ignore_columns=["transaction_id"], current_last_rows=500, critical_features=["amount"], **outs,
    )
    assert drifted is True
    assert outs["table"].metadata["reference_uri"] == str(demo_csv)
    import json

    table = json.loads(Path(outs["table"].path).read_text())
    assert table["current_rows"] == 500 and table["reference_rows"] == 2000
    with pytest.raises(registry.LooplineError, match="has no 'champion' version"):
        components.detect_drift.python_func(
            current_data_uri=str(current), target="is_fraud", tracking_uri=tracking_uri, model_name="other",
            **_drift_outputs(tmp_path / "other"),
        )


def test_detect_drift_compares_with_the_profile_stored_with_the_champion(tmp_path, demo_csv, trained_model, loaded):
    """A champion trained with a reference profile is the reference itself: its training data is not read."""
    import json
    import shutil

    import pandas as pd

    from loopline.data.demo import demo_transactions
    from loopline.data.tables import read_split
    from loopline.drift import reference_profile

    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    frames = [read_split(loaded[name].path) for name in ("train", "validation")]
    profile = reference_profile.build(pd.concat([f for f, _ in frames], ignore_index=True), frames[0][1])
    reference_profile.write(profile, model_dir)
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    _, judged = _evaluate(model_dir, loaded, tmp_path / "judged", {"roc_auc": 0.6})
    version = _register(model_dir, loaded, tmp_path, tracking_uri, judged["blessing"], pipeline_run="run-p")
    registry.set_alias(tracking_uri, "fraud", registry.CHAMPION, version)
    Path(demo_csv).rename(tmp_path / "moved.csv")  # the training data is gone: the profile must do
    try:
        for shift, expected in ((1.0, True), (0.0, False)):
            current = tmp_path / f"current-{shift}.csv"
            demo_transactions(3000, shift=shift, seed=8).to_csv(current, index=False)
            outs = _drift_outputs(tmp_path / f"out-{shift}")
            drifted = components.detect_drift.python_func(
                current_data_uri=str(current), target="is_fraud", tracking_uri=tracking_uri, model_name="fraud",
                **outs,
            )
            assert drifted is expected
            assert outs["table"].metadata["reference_uri"] == f"models:/fraud/{version}#reference_profile.json"
            table = json.loads(Path(outs["table"].path).read_text())
            assert table["reference_rows"] == profile["rows"] and table["current_rows"] == 3000
            assert "profile stored with the champion" in Path(outs["report"].path).read_text()
    finally:
        (tmp_path / "moved.csv").rename(demo_csv)
