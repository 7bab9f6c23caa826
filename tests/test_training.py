"""Training: tuning, the model's preprocessing, and the SavedModel serving contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import DataError
from loopline.data.tables import read_split
from loopline.model.contract import METADATA_FILE, ServingModel, encode_labels
from loopline.tuning import study as tuning
from loopline.tuning.study import check_search_space
from loopline.tuning.training import tune_and_train


def test_export_is_tf_serving_layout_with_metadata(trained_model):
    assert (trained_model / "1" / "saved_model.pb").is_file()
    assert (trained_model / "1" / "variables").is_dir()
    meta = json.loads((trained_model / METADATA_FILE).read_text())
    assert meta["classes"] == ["0", "1"]
    assert meta["features"]["merchant_category"] == "categorical"
    assert meta["features"]["amount"] == "numeric"
    assert "transaction_id" not in meta["features"] and "is_fraud" not in meta["features"]


def test_serving_signature_takes_raw_named_features(trained_model):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(trained_model / "1"))
    fn = loaded.signatures["serving_default"]
    inputs = fn.structured_input_signature[1]
    assert inputs["amount"].dtype == tf.float32 and inputs["amount"].shape.as_list() == [None]
    assert inputs["channel"].dtype == tf.string
    assert list(fn.structured_outputs) == ["probabilities"]


def test_model_learns_and_predicts_probabilities(trained_model, splits):
    from loopline.tuning.trial_scores import auc_score

    holdout, spec = read_split(splits["holdout"])
    proba = ServingModel(trained_model).predict_frame(holdout)
    assert proba.shape == (len(holdout), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert auc_score(encode_labels(holdout, spec), proba) > 0.7


def test_missing_values_and_unseen_categories_are_handled_in_the_graph(trained_model):
    model = ServingModel(trained_model)
    rows = [
        {"amount": None, "hour": 3.0, "account_age_days": None, "tx_last_24h": 1.0, "distance_km": None,
         "merchant_category": None, "channel": "teleport"},
        {"amount": 20.0, "hour": 12.0, "account_age_days": 800.0, "tx_last_24h": 1.0, "distance_km": 5.0,
         "merchant_category": "never-seen", "channel": "chip"},
    ]
    proba = model.predict_rows(rows)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_rows_missing_a_feature_are_rejected_by_name(trained_model):
    with pytest.raises(DataError, match="distance_km"):
        ServingModel(trained_model).predict_rows([{"amount": 1.0}])


def test_same_seed_same_best_params(splits, tmp_path):
    train, spec = read_split(splits["train"])
    validation, _ = read_split(splits["validation"])
    small = train.head(400), validation.head(200)
    a = tune_and_train(*small, spec, settings=tuning.TuningSettings(n_trials=2, max_epochs=2, seed=11), export_dir=tmp_path / "a")
    b = tune_and_train(*small, spec, settings=tuning.TuningSettings(n_trials=2, max_epochs=2, seed=11), export_dir=tmp_path / "b")
    assert a.best_params == b.best_params
    assert [t["params"] for t in a.trials] == [t["params"] for t in b.trials]


def test_multiclass_target(tmp_path):
    from loopline.data.checks import build_spec
    from loopline.data.spec import conform
    from loopline.data.tables import SplitSettings, split

    rng = np.random.default_rng(0)
    n = 900
    x = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x > 0.5, "high", np.where(x < -0.5, "low", "mid"))
    df = pd.DataFrame({"x": x, "color": color, "label": label})
    spec = build_spec(df, target="label")
    train, validation, holdout = split(conform(df, spec), spec, settings=SplitSettings())
    fast = {"learning_rate": {"low": 5e-3, "high": 1e-2, "log": True}, "batch_size": {"choices": [32]}}
    result = tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=1, max_epochs=15, seed=1, search_space=fast), export_dir=tmp_path / "m")
    proba = ServingModel(tmp_path / "m").predict_frame(holdout)
    assert proba.shape == (len(holdout), 3)
    assert result.best_value > 0.8  # macro one-vs-rest AUC on an easy problem


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"units": {"low": 64, "high": 16}}, "low 64 is above high 16"),
        ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
        ({"batch_size": {"choices": []}}, "choices must not be empty"),
        ({"momentum": {"low": 0.1, "high": 0.9}}, "unknown hyperparameter 'momentum'"),
    ],
)
def test_bad_search_space_is_a_clear_error(space, message):
    with pytest.raises(ValueError, match=message):
        check_search_space(space)


@pytest.mark.parametrize("step", ["train_model", "tune_model"])
@pytest.mark.parametrize(("kwargs", "message"), [({"n_trials": 0}, "n_trials must be a whole number of at least 1, got 0"),
                                                 ({"max_epochs": 0}, "max_epochs must be at least 1, got 0")])
def test_bad_budgets_are_rejected_before_training(splits, tmp_path, step, kwargs, message):
    """Each training step, called as KFP calls it: a bad budget stops it before the study's
    storage, the MLflow store or any output is touched."""
    from kfp import dsl

    from loopline import components
    from loopline.core.errors import TuningConfigError

    from .conftest import art

    outs = ({"model": dsl.Model, "metrics": dsl.Metrics, "best_params": dsl.Artifact, "report": dsl.HTML}
            if step == "train_model" else {"metrics": dsl.Metrics})
    outputs = {name: art(cls, tmp_path, name) for name, cls in outs.items()}
    inputs = {name: dsl.Dataset(name=name, uri=str(splits[name]), metadata={}) for name in ("train", "validation")}
    study, store = tmp_path / "study.db", tmp_path / "mlflow.db"
    with pytest.raises(TuningConfigError, match=message):
        getattr(components, step).python_func(**inputs, **outputs, storage_url=f"sqlite:///{study}",
                                              tracking_uri=f"sqlite:///{store}", study_name="budget", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the step wrote before it refused its budget"


def test_the_model_carries_its_decision_threshold_and_class_weights(trained_model, splits):
    """The demo is imbalanced (a few % positives): classes are weighed, and a threshold chosen on
    the validation split is stored where serving and evaluation read it."""
    from loopline.model.decision import IMBALANCE_RATIO, stored_threshold

    meta = json.loads((trained_model / METADATA_FILE).read_text())
    record = meta["decision_threshold"]
    assert record["positive_class"] == "1" and record["chosen_on"] == "validation split"
    assert 0.0 < stored_threshold(meta) < 1.0
    validation, _ = read_split(splits["validation"])
    assert record["rows"] == len(validation)
    weights = {int(k): v for k, v in meta["class_weight"].items()}
    assert weights[1] / weights[0] > IMBALANCE_RATIO  # the rare class weighs more
    assert ServingModel(trained_model).metadata["decision_threshold"] == record


def test_multiclass_models_keep_the_argmax_and_report_the_rows_of_each_phase(tmp_path):
    from loopline.data.checks import build_spec
    from loopline.data.spec import conform
    from loopline.data.tables import SplitSettings, split

    rng = np.random.default_rng(1)
    x = rng.normal(size=600)
    df = pd.DataFrame({"x": x, "label": np.where(x > 0.5, "high", np.where(x < -0.5, "low", "mid"))})
    spec = build_spec(df, target="label")
    train, validation, _ = split(conform(df, spec), spec, settings=SplitSettings())
    settings = tuning.TuningSettings(n_trials=1, max_epochs=2, seed=1, search_space={"batch_size": {"choices": [64]}})
    result = tune_and_train(train, validation, spec, settings=settings, export_dir=tmp_path / "m")
    meta = json.loads((tmp_path / "m" / METADATA_FILE).read_text())
    assert "decision_threshold" not in meta and "decision_threshold" not in result.decision
    assert result.rows == {"tuning_train": len(train), "tuning_validation": len(validation),
                           "final_train": len(train) + len(validation)}


def test_float32_probabilities_are_scored_as_probabilities():
    """A float32 softmax sums to 1 within float32 rounding; the tuning objective scores it without
    scikit-learn's "do not sum to one" warning, and still lets that warning through for rows
    that are not probabilities."""
    import warnings

    from loopline.tuning.trial_scores import objective_score

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 3)).astype(np.float32)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, 500)
    assert np.abs(proba.astype(np.float64).sum(axis=1) - 1).max() > 1.5e-8  # beyond scikit-learn's float64 tolerance
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = objective_score("log_loss", labels, proba)
    assert value == pytest.approx(-np.mean(np.log(proba.astype(np.float64)[np.arange(500), labels])), rel=1e-6)
    with pytest.warns(UserWarning, match="do not sum to one"):
        objective_score("log_loss", labels, np.full((500, 3), 0.4))
