"""Data drift between a reference and a current window.

The statistics are Loopline's own, exact on every row and vectorised with numpy/scipy (each
numeric column is sorted once per window; PSI, KS and Wasserstein all read the sorted arrays):

- numeric columns: PSI (10 bins on the reference's deciles, proportions floored at 1e-6),
  the two-sample Kolmogorov-Smirnov statistic and p-value (as `scipy.stats.ks_2samp`), and the
  Wasserstein distance normed by the reference's standard deviation (as Evidently);
- categorical columns: PSI over the categories, the chi-squared p-value of the reference and
  current counts (a test of homogeneity) and the Jensen-Shannon distance;
- every column: the null rate of each window and its change.

Each feature's verdict uses one chosen test and its threshold; the dataset drifted when the
share of drifted features reaches `drift_share`, or when any listed critical feature drifted.
The visual report is Evidently's (`DataDriftPreset`), on a seeded sample when the windows are
large; the page says so at its top, next to Loopline's all-row verdicts.

The settings and the result are declared in `drift_settings`, the reports written by
`drift_report`; this module computes the statistics and the verdicts.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import DataError
from loopline.data.spec import CATEGORICAL, NUMERIC, DatasetSpec, infer_kind
from loopline.drift.report import summary_markdown, write_report  # noqa: F401 - the drift API
from loopline.drift.settings import (
    KS_EXACT_MAX_N,
    P_VALUE_TESTS,
    PREDICTION_CLASS,
    PREDICTION_SCORE,
    PSI_BINS,
    PSI_EPS,
    DriftResult,
    DriftSettings,
)

log = logging.getLogger(__name__)

def _quantiles_sorted(sorted_values: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """`np.quantile(values, qs)` (linear interpolation) on an already sorted array."""
    position = qs * (len(sorted_values) - 1)
    lo = np.floor(position).astype(np.int64)
    hi = np.minimum(lo + 1, len(sorted_values) - 1)
    frac = position - lo
    return sorted_values[lo] + frac * (sorted_values[hi] - sorted_values[lo])

def psi_from_counts(reference_counts: np.ndarray, current_counts: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index of two histograms over the same bins."""
    ref = np.maximum(reference_counts / max(reference_counts.sum(), 1), eps)
    cur = np.maximum(current_counts / max(current_counts.sum(), 1), eps)
    return float(np.sum((cur - ref) * np.log(cur / ref)))

def ks_p_value(statistic: float, n1: int, n2: int) -> float:
    """Two-sided p-value of the two-sample KS statistic, as `scipy.stats.ks_2samp(method="asymp")`."""
    from scipy.stats import distributions

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(distributions.kstwo.sf(statistic, np.round(en)), 0.0, 1.0))

def numeric_statistics(reference: np.ndarray, current: np.ndarray) -> dict[str, float]:
    """PSI, KS statistic and p-value, normed Wasserstein distance of two samples without nulls."""
    from scipy import stats

    ref_sorted = np.sort(reference)
    cur_sorted = np.sort(current)
    n1, n2 = len(ref_sorted), len(cur_sorted)
    # PSI: bins [e_i, e_i+1) between the reference's deciles, open at both ends; tied deciles merge.
    edges = np.unique(_quantiles_sorted(ref_sorted, np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]))
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(ref_sorted, edges, side="left"), [n1]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur_sorted, edges, side="left"), [n2]]))
    psi = psi_from_counts(ref_counts, cur_counts)
    # Both empirical CDFs on the merged sample: KS is their largest gap, Wasserstein their area.
    merged = np.sort(np.concatenate([ref_sorted, cur_sorted]), kind="stable")  # merges two sorted runs
    cdf_ref = np.searchsorted(ref_sorted, merged, side="right") / n1
    cdf_cur = np.searchsorted(cur_sorted, merged, side="right") / n2
    gaps = np.abs(cdf_ref - cdf_cur)
    ks_stat = float(gaps.max())
    if max(n1, n2) <= KS_EXACT_MAX_N:
        ks_p = float(stats.ks_2samp(ref_sorted, cur_sorted).pvalue)
    else:
        ks_p = ks_p_value(ks_stat, n1, n2)
    wasserstein = float(np.sum(gaps[:-1] * np.diff(merged)))
    norm = max(float(np.std(ref_sorted)), 0.001)  # Evidently's normalisation
    return {"psi": psi, "ks_statistic": ks_stat, "ks_p_value": ks_p, "wasserstein": wasserstein / norm}

def categorical_statistics(reference: pd.Series, current: pd.Series) -> dict[str, Any]:
    """PSI, chi-squared p-value and Jensen-Shannon distance over the categories of both windows."""
    return categorical_statistics_from_counts(reference.value_counts(dropna=True), current.value_counts(dropna=True))


def categorical_statistics_from_counts(ref_counts: pd.Series, cur_counts: pd.Series) -> dict[str, Any]:
    """`categorical_statistics` from each window's count per category."""
    from scipy import stats
    from scipy.spatial import distance

    categories = ref_counts.index.union(cur_counts.index)
    ref = ref_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.float64)
    cur = cur_counts.reindex(categories, fill_value=0).to_numpy(dtype=np.float64)
    if len(categories) < 2:
        chi2_p = 1.0
    else:
        chi2_p = float(stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue)
    js = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))
    new = [str(c) for c in categories[(ref == 0) & (cur > 0)]]
    return {
        "psi": psi_from_counts(ref, cur),
        "chi2_p_value": chi2_p,
        "jensenshannon": 0.0 if math.isnan(js) else js,
        "new_categories": new[:20],
    }

def _score(stats_: dict[str, Any], test: str) -> float:
    key = {"ks": "ks_p_value", "chisquare": "chi2_p_value"}.get(test, test)
    return float(stats_[key])

def feature_drift(
    name: str, kind: str, reference: pd.Series, current: pd.Series, settings: DriftSettings
) -> dict[str, Any]:
    """Every statistic of one column, and its verdict under the chosen test."""
    ref_null = float(reference.isna().mean())
    cur_null = float(current.isna().mean())
    ref_values, cur_values = reference.dropna(), current.dropna()
    if ref_values.empty or cur_values.empty:
        window = "reference" if ref_values.empty else "current"
        raise DataError(f"column '{name}' has no values in the {window} data (all null): drift cannot be measured")
    if kind == NUMERIC:
        ref_array = _finite_array(name, ref_values, "reference")
        cur_array = _finite_array(name, cur_values, "current")
        stats_: dict[str, Any] = numeric_statistics(ref_array, cur_array)
    else:
        stats_ = categorical_statistics(ref_values.astype(str), cur_values.astype(str))
    return verdict(kind, stats_, ref_null, cur_null, settings)


def verdict(kind: str, stats_: dict[str, Any], ref_null: float, cur_null: float, settings: DriftSettings
            ) -> dict[str, Any]:
    """One column's verdict from its statistics and null rates under the chosen test."""
    test = settings.numeric_test if kind == NUMERIC else settings.categorical_test
    threshold = settings.threshold(test)
    score = _score(stats_, test)
    test_drifted = score < threshold if test in P_VALUE_TESTS else score > threshold
    null_change = cur_null - ref_null
    null_drifted = abs(null_change) > settings.null_rate_threshold
    reasons = []
    if test_drifted:
        reasons.append(f"{test} {score:.4g} {'<' if test in P_VALUE_TESTS else '>'} {threshold:g}")
    if null_drifted:
        reasons.append(f"null rate {ref_null:.1%} -> {cur_null:.1%}")
    return {
        "drifted": bool(test_drifted or null_drifted),
        "test": test,
        "score": score,
        "threshold": threshold,
        "kind": kind,
        **stats_,
        "null_rate_reference": ref_null,
        "null_rate_current": cur_null,
        "null_rate_change": null_change,
        "reason": "; ".join(reasons),
    }

def _finite_array(name: str, values: pd.Series, window: str) -> np.ndarray:
    try:
        array = values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        example = repr(bad.iloc[0]) if len(bad) else "?"
        raise DataError(
            f"column '{name}' is numeric in the reference but holds text in the {window} data, e.g. {example}"
        ) from None
    infinite = np.isinf(array)
    if infinite.any():
        raise DataError(
            f"column '{name}' holds {int(infinite.sum())} infinite values in the {window} data: "
            "numeric values must be finite"
        )
    return array

def feature_kinds(reference: pd.DataFrame, spec: DatasetSpec | None = None) -> dict[str, str]:
    """The columns compared and their kinds: the spec's features, else every column's own kind."""
    if spec is not None:
        return dict(spec.features)
    return {str(c): infer_kind(reference[c]) for c in reference.columns}

def check_windows(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> None:
    """Both windows must hold the same feature columns, at least one, and at least one row."""
    if not columns:
        raise DataError("no feature column is left to compare: every column of the reference is ignored "
                        "(--ignore / ignore_columns) or is the label")
    for name, frame in (("reference", reference), ("current", current)):
        if frame.empty:
            raise DataError(f"{name} data has no rows")
    missing = [c for c in columns if c not in current.columns]
    extra = [str(c) for c in current.columns if c not in reference.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from the current data: {', '.join(missing)}")
        if extra:
            parts.append(f"not in the reference: {', '.join(extra)}")
        raise DataError(f"reference and current data have different columns ({'; '.join(parts)})")

def last_rows(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The current window as the last `n` rows of a dataset (all rows when n is 0)."""
    if n < 0:
        raise DataError(f"current_last_rows must be 0 (all rows) or positive, got {n}")
    return frame.tail(n) if n else frame

def predict_frames(model_dir: str | Path, reference: pd.DataFrame, current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's predicted score (positive class, or the top class's probability when there are
    more than two) and class on both windows."""
    from loopline.model.contract import ServingModel

    model = ServingModel(model_dir)
    out = []
    for frame in (reference, current):
        proba = model.predict_frame(frame)
        top = proba.argmax(axis=1)
        score = proba[:, -1] if proba.shape[1] == 2 else proba.max(axis=1)
        out.append(pd.DataFrame({PREDICTION_SCORE: score.astype(np.float64),
                                 PREDICTION_CLASS: np.asarray(model.classes, dtype=object)[top]}))
    return out[0], out[1]

def compute(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    settings: DriftSettings,
    *,
    predictions: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> DriftResult:
    """Every feature's statistics on all rows, the feature verdicts and the dataset verdict."""
    columns = list(kinds)
    check_windows(reference, current, columns)
    prediction_columns = [PREDICTION_SCORE, PREDICTION_CLASS] if predictions is not None else []
    unknown = [c for c in settings.critical_features if c not in kinds and c not in prediction_columns]
    if unknown:
        raise DataError(f"critical_features names columns that are not features: {', '.join(unknown)}")
    log.info(
        "computing drift on %d features (%s for numeric, %s for categorical): %d reference rows, %d current rows",
        len(columns), settings.numeric_test, settings.categorical_test, len(reference), len(current),
    )
    features = {}
    for i, name in enumerate(columns, 1):
        features[name] = feature_drift(name, kinds[name], reference[name], current[name], settings)
        log.debug("drift %d/%d %s: %s", i, len(columns), name, features[name]["reason"] or "no drift")
    predicted = {}
    if predictions is not None:
        ref_pred, cur_pred = predictions
        for name, kind in ((PREDICTION_SCORE, NUMERIC), (PREDICTION_CLASS, CATEGORICAL)):
            predicted[name] = feature_drift(name, kind, ref_pred[name], cur_pred[name], settings)
    return summarize(features, predicted, settings, reference_rows=len(reference), current_rows=len(current))


def summarize(features: dict[str, dict[str, Any]], predicted: dict[str, dict[str, Any]], settings: DriftSettings, *,
              reference_rows: int, current_rows: int) -> DriftResult:
    """The dataset verdict from the feature verdicts."""
    share = sum(f["drifted"] for f in features.values()) / len(features)
    critical_hit = [c for c in settings.critical_features if {**features, **predicted}[c]["drifted"]]
    drifted = share >= settings.drift_share or bool(critical_hit)
    if critical_hit:
        reason = f"critical feature drifted: {', '.join(critical_hit)}"
    else:
        reason = f"{share:.0%} of features drifted ({'at or above' if drifted else 'below'} {settings.drift_share:.0%})"
    result = DriftResult(
        drifted=drifted, share_drifted=share, drift_share_threshold=settings.drift_share, features=features,
        predictions=predicted, critical_features=list(settings.critical_features),
        reference_rows=reference_rows, current_rows=current_rows, reason=reason,
    )
    log.info("drift: %s -> %s", reason, "DRIFTED" if drifted else "no drift")
    return result

def detect(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec | None = None,
    *,
    settings: DriftSettings,
    report_path: str | Path | None = None,
    model_dir: str | Path | None = None,
) -> DriftResult:
    """Drift of `current` against `reference` on the spec's features (or every column), with the
    Evidently report of `settings.report_sample_rows` rows per window written to `report_path`
    when given."""
    kinds = feature_kinds(reference, spec)
    predictions = predict_frames(model_dir, reference, current) if model_dir else None
    result = compute(reference, current, kinds, settings, predictions=predictions)
    if report_path is not None:
        write_report(reference, current, kinds, result, settings, report_path)
    return result
