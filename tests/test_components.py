"""Component interfaces: each component's `python_func` with real KFP artifacts on a tmp path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import dsl

from loopline import components, registry, serving
from loopline.errors import DataError, GateConfigError, ValidationFailed

from .conftest import FAST_SEARCH_SPACE


def art(cls, tmp_path: Path, name: str):
    return cls(name=name, uri=str(tmp_path / name), metadata={})


@pytest.fixture()
def loaded(tmp_path, demo_csv):
    outs = {n: art(dsl.Dataset, tmp_path, n) for n in ("train", "validation", "holdout")}
    components.load_data.python_func(
        data_uri=str(demo_csv), target="is_fraud", ignore_columns=["transaction_id"], feature_kinds={},
        validation_fraction=0.15, holdout_fraction=0.15, seed=42, **outs,
    )
    return outs


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


def test_validate_data_passes_and_reports(loaded, tmp_path):
    report, metrics = art(dsl.HTML, tmp_path, "report"), art(dsl.Metrics, tmp_path, "metrics")
    passed = components.validate_data.python_func(**loaded, report=report, metrics=metrics, fail_on_error=True)
    assert passed is True
    assert metrics.metadata["expectations_failed"] == 0 and metrics.metadata["success_percent"] == 100.0
    assert "Data validation: passed" in Path(report.path).read_text()


def test_validate_data_names_the_failed_expectation(loaded, tmp_path):
    import pandas as pd

    from loopline.data import read_split, write_split

    holdout, spec = read_split(loaded["holdout"].path)
    holdout["amount"] = holdout["amount"] * 1000  # far outside the training range
    write_split(holdout, spec, loaded["holdout"].path)
    report, metrics = art(dsl.HTML, tmp_path, "report"), art(dsl.Metrics, tmp_path, "metrics")
    with pytest.raises(ValidationFailed, match=r"holdout: expect_column_values_to_be_between\(amount\)"):
        components.validate_data.python_func(**loaded, report=report, metrics=metrics, fail_on_error=True)
    assert isinstance(pd.read_parquet(loaded["holdout"].path), pd.DataFrame)


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
    from loopline.errors import TuningConfigError

    outs = {k: art(cls, tmp_path, k) for k, cls in
            (("model", dsl.Model), ("metrics", dsl.Metrics), ("best_params", dsl.Artifact), ("report", dsl.HTML))}
    with pytest.raises(TuningConfigError, match=message):
        components.train_model.python_func(train=loaded["train"], validation=loaded["validation"], **outs, **kwargs)
    assert not any(Path(a.path).exists() for a in outs.values())


def _evaluate(trained_model, loaded, tmp_path, thresholds):
    model = dsl.Model(name="model", uri=str(trained_model), metadata={})
    outs = {
        "metrics": art(dsl.Metrics, tmp_path, "metrics"),
        "classification_metrics": art(dsl.ClassificationMetrics, tmp_path, "cm"),
        "report": art(dsl.Markdown, tmp_path, "report"),
    }
    passed = components.evaluate_model.python_func(model=model, holdout=loaded["holdout"], thresholds=thresholds, **outs)
    return passed, outs


def test_evaluate_model_gate_passes_and_logs_visualizations(trained_model, loaded, tmp_path):
    passed, outs = _evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.6})
    assert passed is True
    assert outs["metrics"].metadata["roc_auc"] > 0.6 and outs["metrics"].metadata["gate_passed"] == 1.0
    cm = outs["classification_metrics"].metadata
    assert [a["displayName"] for a in cm["confusionMatrix"]["annotationSpecs"]] == ["0", "1"]
    assert sum(sum(row["row"]) for row in cm["confusionMatrix"]["rows"]) == loaded["holdout"].metadata["rows"]
    assert cm["confidenceMetrics"]
    assert "Evaluation gate: PASSED" in Path(outs["report"].path).read_text()


def test_evaluate_model_gate_fails_on_a_missed_threshold(trained_model, loaded, tmp_path):
    passed, outs = _evaluate(trained_model, loaded, tmp_path, {"roc_auc": 0.999})
    assert passed is False
    assert "| roc_auc |" in Path(outs["report"].path).read_text() and "FAIL" in Path(outs["report"].path).read_text()


def test_evaluate_model_without_thresholds_is_an_error(trained_model, loaded, tmp_path):
    with pytest.raises(GateConfigError, match="no gate thresholds"):
        _evaluate(trained_model, loaded, tmp_path, {})


def test_register_then_deploy_locally_moves_champion(trained_model, loaded, tmp_path):
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    model = dsl.Model(name="model", uri=str(trained_model), metadata={"best_params": {"units": 32}})
    version = components.register_model.python_func(
        model=model, train=loaded["train"], holdout=loaded["holdout"], tracking_uri=tracking_uri,
        model_name="fraud", pipeline_run="test-run", extra_tags={"team": "risk"},
    )
    assert version == "1"
    assert registry.aliases(tracking_uri, "fraud") == {"challenger": "1"}

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
        assert "kind: InferenceService" in Path(manifest.path).read_text()
        assert list((home / "manifests").glob("fraud-v1.yaml"))
        state = serving.read_state(home, "fraud")
        assert state and serving.is_alive(state)
        # a cluster target cannot serve files the registry keeps on this machine's disk
        from loopline.errors import DeploymentError

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


def test_deploy_model_bad_target_is_refused_before_any_work(loaded, tmp_path):
    from loopline.errors import DeploymentError

    with pytest.raises(DeploymentError, match="target must be 'local' or 'kserve'"):
        components.deploy_model.python_func(
            model_name="fraud", model_version="1", tracking_uri="sqlite:///x.db", holdout=loaded["holdout"],
            manifest=art(dsl.Artifact, tmp_path, "manifest"), report=art(dsl.Markdown, tmp_path, "report"),
            target="cluster",
        )


def test_detect_drift_flags_a_shifted_batch_and_not_the_same_one(tmp_path, demo_csv):
    from loopline.data import demo_transactions

    shifted = tmp_path / "shifted.csv"
    demo_transactions(2000, shift=1.0, seed=8).to_csv(shifted, index=False)
    same = tmp_path / "same.csv"
    demo_transactions(2000, shift=0.0, seed=9).to_csv(same, index=False)
    results = {}
    for name, current in (("shifted", shifted), ("same", same)):
        outs = {k: art(cls, tmp_path / name, k) for k, cls in (("report", dsl.HTML), ("metrics", dsl.Metrics), ("summary", dsl.Markdown))}
        drifted = components.detect_drift.python_func(
            reference_data_uri=str(demo_csv), current_data_uri=str(current), target="is_fraud",
            ignore_columns=["transaction_id"], feature_kinds={}, drift_share=0.5, **outs,
        )
        results[name] = (drifted, outs)
    assert results["shifted"][0] is True and results["same"][0] is False
    assert results["shifted"][1]["metrics"].metadata["share_drifted"] >= 0.5
    assert "drift_amount" in results["shifted"][1]["metrics"].metadata
    assert Path(results["shifted"][1]["report"].path).stat().st_size > 10_000
    assert "| amount |" in Path(results["shifted"][1]["summary"].path).read_text()


def test_detect_drift_current_missing_a_column_is_named(tmp_path, demo_csv):
    import pandas as pd

    current = tmp_path / "current.csv"
    pd.read_csv(demo_csv).drop(columns=["channel"]).to_csv(current, index=False)
    outs = {k: art(cls, tmp_path, k) for k, cls in (("report", dsl.HTML), ("metrics", dsl.Metrics), ("summary", dsl.Markdown))}
    with pytest.raises(DataError, match="lacks feature columns: channel"):
        components.detect_drift.python_func(
            reference_data_uri=str(demo_csv), current_data_uri=str(current), target="is_fraud",
            ignore_columns=["transaction_id"], **outs,
        )
