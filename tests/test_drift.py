"""Drift statistics against plain numpy/scipy, feature and dataset verdicts, prediction drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from loopline import drift
from loopline.core.errors import DataError
from loopline.data.checks import build_spec
from loopline.data.demo import demo_transactions
from loopline.data.spec import conform
from loopline.data.tables import read_split


def plain_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI as a reader would write it: 10 bins on the reference's deciles, open ends, eps 1e-6."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, 11))[1:-1])
    edges = np.concatenate([[-np.inf], edges, [np.inf]])
    ref = np.maximum(np.histogram(reference, edges)[0] / len(reference), 1e-6)
    cur = np.maximum(np.histogram(current, edges)[0] / len(current), 1e-6)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


@pytest.mark.parametrize(("n_ref", "n_cur"), [(20_000, 30_000), (500, 800)], ids=["asymptotic", "exact"])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_numeric_statistics_equal_numpy_and_scipy(n_ref, n_cur, shift):
    rng = np.random.default_rng(1)
    reference = rng.lognormal(1.0, 0.6, n_ref)
    current = rng.lognormal(1.0 + shift, 0.6, n_cur)
    got = drift.numeric_statistics(reference, current)
    ks = stats.ks_2samp(reference, current)
    assert got["psi"] == pytest.approx(plain_psi(reference, current), rel=1e-12, abs=1e-12)
    assert got["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-15)
    assert got["ks_p_value"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current) / np.std(reference), rel=1e-9)
    if shift:
        assert got["psi"] > 0.2 and got["ks_p_value"] < 1e-6
    else:
        assert got["psi"] < 0.2 and got["wasserstein"] < 0.15


def test_psi_on_a_column_with_ties_merges_equal_deciles():
    rng = np.random.default_rng(2)
    reference = rng.poisson(1.0, 10_000).astype(float)  # deciles repeat: 0, 0, 0, 1, ...
    current = rng.poisson(2.0, 10_000).astype(float)
    got = drift.numeric_statistics(reference, current)
    assert got["psi"] == pytest.approx(plain_psi(reference, current), rel=1e-12)
    assert np.isfinite(got["psi"]) and got["psi"] > 0.2


def test_categorical_statistics_equal_scipy():
    rng = np.random.default_rng(3)
    reference = pd.Series(rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2]))
    current = pd.Series(rng.choice(["a", "b", "c", "d"], 4000, p=[0.3, 0.3, 0.3, 0.1]))
    got = drift.categorical_statistics(reference, current)
    ref = reference.value_counts().reindex(["a", "b", "c", "d"], fill_value=0).to_numpy(float)
    cur = current.value_counts().reindex(["a", "b", "c", "d"], fill_value=0).to_numpy(float)
    assert got["chi2_p_value"] == pytest.approx(stats.chi2_contingency([ref, cur], correction=False).pvalue)
    assert got["jensenshannon"] == pytest.approx(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))
    p, q = np.maximum(ref / ref.sum(), 1e-6), np.maximum(cur / cur.sum(), 1e-6)
    assert got["psi"] == pytest.approx(np.sum((q - p) * np.log(q / p)))
    assert got["new_categories"] == ["d"]


def _frames(n=3000, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(shift, 1.0, n),
        "y": rng.exponential(1.0, n),
        "z": rng.uniform(0, 1, n),
        "c": rng.choice(["p", "q", "r"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]),
    })


KINDS = {"x": "numeric", "y": "numeric", "z": "numeric", "c": "categorical"}


def test_verdicts_default_tests_and_dataset_share():
    reference, current = _frames(seed=1), _frames(shift=1.0, seed=2)
    current["y"] = _frames(seed=3)["y"]
    current["z"] = _frames(seed=4)["z"]
    result = drift.compute(reference, current, KINDS, drift.DriftSettings())
    assert result.drifted_features == ["x", "c"]
    assert result.features["x"]["test"] == "psi" and result.features["c"]["test"] == "jensenshannon"
    assert result.share_drifted == 0.5 and result.drifted is True  # the share is reached: at or above
    assert "50% of features drifted (at or above 50%)" == result.reason
    looser = drift.compute(reference, current, KINDS, drift.DriftSettings(drift_share=0.75))
    assert looser.drifted is False
    critical = drift.compute(reference, current, KINDS, drift.DriftSettings(drift_share=0.75, critical_features=["c"]))
    assert critical.drifted is True and critical.reason == "critical feature drifted: c"


@pytest.mark.parametrize(
    ("numeric_test", "key", "below"), [("psi", "psi", False), ("ks", "ks_p_value", True), ("wasserstein", "wasserstein", False)]
)
def test_each_numeric_test_and_its_threshold_direction(numeric_test, key, below):
    reference, current = _frames(seed=1), _frames(seed=2)
    current["x"] = current["x"] + 0.15
    base = drift.compute(reference, current, KINDS, drift.DriftSettings(numeric_test=numeric_test))
    score = base.features["x"][key]
    assert base.features["x"]["score"] == score and base.features["x"]["test"] == numeric_test
    # a threshold just on either side of the score flips the verdict, in the test's own direction
    for threshold, expect in ((score * 1.01, below), (score * 0.99, not below)):
        settings = drift.DriftSettings(numeric_test=numeric_test, thresholds={numeric_test: threshold})
        assert drift.compute(reference, current, KINDS, settings).features["x"]["drifted"] is expect


def test_chisquare_test_for_categorical_features():
    reference, current = _frames(seed=1), _frames(shift=1.0, seed=2)
    result = drift.compute(reference, current, KINDS, drift.DriftSettings(categorical_test="chisquare"))
    assert result.features["c"]["test"] == "chisquare" and result.features["c"]["score"] < 0.05
    assert result.features["c"]["drifted"] is True


def test_null_rate_change_is_drift():
    reference, current = _frames(seed=1), _frames(seed=2)
    current.loc[current.index[: len(current) // 4], "z"] = np.nan
    result = drift.compute(reference, current, KINDS, drift.DriftSettings())
    z = result.features["z"]
    assert z["null_rate_reference"] == 0.0 and z["null_rate_current"] == 0.25
    assert z["null_rate_change"] == 0.25 and z["drifted"] is True and "null rate 0.0% -> 25.0%" in z["reason"]
    assert z["psi"] < 0.05  # the values themselves did not move


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"drift_share": 0.0}, "drift_share must be in (0, 1]"),
        ({"numeric_test": "t"}, "numeric_test 't' is not one of psi, ks, wasserstein"),
        ({"categorical_test": "ks"}, "categorical_test 'ks' is not one of"),
        ({"thresholds": {"kl": 0.1}}, "thresholds: unknown test 'kl'"),
        ({"thresholds": {"ks": 5}}, "thresholds: 'ks' is a p-value threshold and must be in (0, 1)"),
        ({"critical_features": ["nope"]}, "critical_features names columns that are not features: nope"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(DataError, match=rf"^{message.replace('(', '[(]').replace(')', '[)]')}"):
        drift.compute(_frames(seed=1), _frames(seed=2), KINDS, drift.DriftSettings(**settings))


def test_summary_lists_the_most_drifted_first():
    reference, current = _frames(seed=1), _frames(shift=1.0, seed=2)
    text = drift.summary_markdown(drift.compute(reference, current, KINDS, drift.DriftSettings()), top=2)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| feature")]
    assert [r.split(" | ")[0] for r in rows] == ["| x", "| c"] and "2 more features" in text


def test_last_rows_window():
    frame = pd.DataFrame({"a": range(10)})
    assert drift.last_rows(frame, 3)["a"].tolist() == [7, 8, 9]
    assert len(drift.last_rows(frame, 0)) == 10
    with pytest.raises(DataError, match="current_last_rows must be 0"):
        drift.last_rows(frame, -1)


def test_prediction_drift_with_the_model(splits, trained_model):
    """The model's scores and classes get the same tests; a critical prediction drift decides."""
    train, spec = read_split(splits["train"])
    shifted_raw = demo_transactions(1500, shift=1.0, seed=8)
    shifted = conform(shifted_raw, build_spec(shifted_raw, target="is_fraud", ignore_columns=["transaction_id"]))
    result = drift.detect(train, shifted, spec, model_dir=trained_model,
                          settings=drift.DriftSettings(drift_share=1.0, critical_features=["prediction_score"]))
    assert set(result.predictions) == {"prediction_score", "prediction_class"}
    score = result.predictions["prediction_score"]
    assert score["kind"] == "numeric" and score["test"] == "psi" and score["drifted"] is True
    assert result.predictions["prediction_class"]["kind"] == "categorical"
    assert result.drifted is True and result.reason == "critical feature drifted: prediction_score"
    assert "predictions" in result.to_dict()
    same = drift.detect(train, read_split(splits["validation"])[0], spec, model_dir=trained_model,
                        settings=drift.DriftSettings())
    assert same.predictions["prediction_score"]["drifted"] is False
