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
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.data import CATEGORICAL, NUMERIC, DatasetSpec, infer_kind
from loopline.errors import DataError

log = logging.getLogger(__name__)

PSI_BINS = 10
PSI_EPS = 1e-6
KS_EXACT_MAX_N = 10_000  # scipy's `auto`: exact p-values up to this size, asymptotic above
NUMERIC_TESTS = ("psi", "ks", "wasserstein")
CATEGORICAL_TESTS = ("psi", "jensenshannon", "chisquare")
P_VALUE_TESTS = ("ks", "chisquare")  # drift below the threshold; the others drift above it
# Defaults from common practice: PSI > 0.2, KS p < 0.05, Wasserstein (normed) > 0.1,
# Jensen-Shannon > 0.1, chi-squared p < 0.05.
DEFAULT_TEST_THRESHOLDS = {"psi": 0.2, "ks": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "chisquare": 0.05}
DEFAULT_NUMERIC_TEST = "psi"
DEFAULT_CATEGORICAL_TEST = "jensenshannon"
DEFAULT_NULL_RATE_THRESHOLD = 0.1  # an absolute change of the null rate that counts as drift
DEFAULT_REPORT_SAMPLE = 50_000  # rows per window given to Evidently for the visual report
PREDICTION_SCORE = "prediction_score"
PREDICTION_CLASS = "prediction_class"
# Evidently's names for the same tests, for the visual report.
_EVIDENTLY_METHODS = {"psi": "psi", "ks": "ks", "wasserstein": "wasserstein", "jensenshannon": "jensenshannon",
                      "chisquare": "chisquare"}


@dataclass(frozen=True, kw_only=True)
class DriftSettings:
    """How `detect_drift` reads the windows and judges features: the one declaration of these
    settings and their defaults. Thresholds default to DEFAULT_TEST_THRESHOLDS, per test.
    Checked on construction."""

    drift_share: float = 0.5
    numeric_test: str = DEFAULT_NUMERIC_TEST
    categorical_test: str = DEFAULT_CATEGORICAL_TEST
    thresholds: dict[str, float] = field(default_factory=dict)
    critical_features: list[str] = field(default_factory=list)
    null_rate_threshold: float = DEFAULT_NULL_RATE_THRESHOLD
    feature_kinds: dict[str, str] = field(default_factory=dict)  # column -> numeric / categorical
    ignore_columns: list[str] = field(default_factory=list)  # left out of the drift
    current_last_rows: int = 0  # 0: every row of the current window
    report_sample_rows: int = DEFAULT_REPORT_SAMPLE  # rows per window in the Evidently report; 0: all

    def threshold(self, test: str) -> float:
        return float(self.thresholds.get(test, DEFAULT_TEST_THRESHOLDS[test]))

    def __post_init__(self) -> None:
        """The checks of the drift settings, each a one-line DataError naming the parameter."""
        if not 0.0 < self.drift_share <= 1.0:
            raise DataError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.numeric_test not in NUMERIC_TESTS:
            raise DataError(f"numeric_test '{self.numeric_test}' is not one of {', '.join(NUMERIC_TESTS)}")
        if self.categorical_test not in CATEGORICAL_TESTS:
            raise DataError(
                f"categorical_test '{self.categorical_test}' is not one of {', '.join(CATEGORICAL_TESTS)}"
            )
        for test, value in self.thresholds.items():
            if test not in DEFAULT_TEST_THRESHOLDS:
                raise DataError(f"thresholds: unknown test '{test}' (known: {', '.join(DEFAULT_TEST_THRESHOLDS)})")
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise DataError(f"thresholds: '{test}' must be a non-negative number, got {value!r}")
            if test in P_VALUE_TESTS and not 0.0 < value < 1.0:
                raise DataError(f"thresholds: '{test}' is a p-value threshold and must be in (0, 1), got {value}")
        if not 0.0 < self.null_rate_threshold <= 1.0:
            raise DataError(f"null_rate_threshold must be in (0, 1], got {self.null_rate_threshold}")


@dataclass
class DriftResult:
    drifted: bool
    share_drifted: float
    drift_share_threshold: float
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> statistics and verdict
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)  # prediction_score / _class
    critical_features: list[str] = field(default_factory=list)
    reference_rows: int = 0
    current_rows: int = 0
    reason: str = ""

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f["drifted"]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of `loopline drift --json` (and the component's table artifact)."""
        out: dict[str, Any] = {
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "features": self.features,
        }
        if self.predictions:
            out["predictions"] = self.predictions
        out.update(
            {
                "drift_share_threshold": self.drift_share_threshold,
                "critical_features": self.critical_features,
                "reference_rows": self.reference_rows,
                "current_rows": self.current_rows,
                "reason": self.reason,
            }
        )
        return out


# --------------------------------------------------------------------------------------------
# Statistics


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


# --------------------------------------------------------------------------------------------
# Windows


def feature_kinds(reference: pd.DataFrame, spec: DatasetSpec | None = None) -> dict[str, str]:
    """The columns compared and their kinds: the spec's features, else every column's own kind."""
    if spec is not None:
        return dict(spec.features)
    return {str(c): infer_kind(reference[c]) for c in reference.columns}


def check_windows(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> None:
    """Both windows must hold the same feature columns and at least one row."""
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
    from loopline.model_contract import ServingModel

    model = ServingModel(model_dir)
    out = []
    for frame in (reference, current):
        proba = model.predict_frame(frame)
        top = proba.argmax(axis=1)
        score = proba[:, -1] if proba.shape[1] == 2 else proba.max(axis=1)
        out.append(pd.DataFrame({PREDICTION_SCORE: score.astype(np.float64),
                                 PREDICTION_CLASS: np.asarray(model.classes, dtype=object)[top]}))
    return out[0], out[1]


# --------------------------------------------------------------------------------------------
# Dataset verdict


def compute(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    settings: DriftSettings | None = None,
    *,
    predictions: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> DriftResult:
    """Every feature's statistics on all rows, the feature verdicts and the dataset verdict."""
    settings = settings or DriftSettings()
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


# --------------------------------------------------------------------------------------------
# Reports


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=n, random_state=seed) if n and len(frame) > n else frame


def write_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: dict[str, str],
    result: DriftResult,
    settings: DriftSettings,
    report_path: str | Path,
    *,
    sample_rows: int = DEFAULT_REPORT_SAMPLE,
    seed: int = 0,
) -> Path:
    """Evidently's DataDriftPreset report, on a seeded sample of each window when it is larger
    than `sample_rows`, with Loopline's all-row verdicts at the top of the page."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(kinds)
    ref_sample = _sample(reference[columns], sample_rows, seed)
    cur_sample = _sample(current[columns], sample_rows, seed + 1)
    numeric = [c for c, k in kinds.items() if k == NUMERIC]
    categorical = [c for c, k in kinds.items() if k == CATEGORICAL]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    log.info("rendering the Evidently report on %d reference and %d current rows", len(ref_sample), len(cur_sample))
    preset = DataDriftPreset(
        drift_share=settings.drift_share,
        num_method=_EVIDENTLY_METHODS[settings.numeric_test],
        cat_method=_EVIDENTLY_METHODS[settings.categorical_test],
        num_threshold=settings.threshold(settings.numeric_test),
        cat_threshold=settings.threshold(settings.categorical_test),
    )
    snapshot = Report([preset]).run(
        Dataset.from_pandas(_for_evidently(cur_sample, kinds), data_definition=definition),
        Dataset.from_pandas(_for_evidently(ref_sample, kinds), data_definition=definition),
    )
    path = Path(report_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    banner = _report_banner(result, len(ref_sample), len(cur_sample), seed)
    page = path.read_text(encoding="utf-8")
    marker = page.find("<body")
    at = page.find(">", marker) + 1 if marker >= 0 else 0
    path.write_text(page[:at] + banner + page[at:], encoding="utf-8")
    return path


def _for_evidently(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    out = frame.copy()
    for name, kind in kinds.items():
        if kind == CATEGORICAL:
            col = out[name]
            out[name] = col.where(col.isna(), col.astype(str))
    return out


def _report_banner(result: DriftResult, ref_sampled: int, cur_sampled: int, seed: int) -> str:
    sampled = ref_sampled < result.reference_rows or cur_sampled < result.current_rows
    if sampled:
        note = (
            f"The charts and statistics below are Evidently's, computed on a seeded random sample "
            f"(seed {seed}) of {ref_sampled:,} of {result.reference_rows:,} reference rows and "
            f"{cur_sampled:,} of {result.current_rows:,} current rows. Loopline's verdicts in this "
            f"box are computed on all rows."
        )
    else:
        note = (
            f"The charts and statistics below are Evidently's, on all {result.reference_rows:,} reference "
            f"and {result.current_rows:,} current rows. Loopline's verdicts in this box are its own."
        )
    rows = []
    for name, f in sorted(result.features.items(), key=lambda kv: (not kv[1]["drifted"], -kv[1]["psi"])):
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{f['test']}</td><td>{f['score']:.4g}</td>"
            f"<td>{f['psi']:.4f}</td><td>{f['null_rate_change']:+.1%}</td>"
            f"<td>{'<b>drifted</b>' if f['drifted'] else 'no'}</td></tr>"
        )
    verdict = "DRIFTED" if result.drifted else "no drift"
    return (
        "<div id='loopline-drift-summary' style='font-family:sans-serif;margin:12px;padding:12px;"
        "border:2px solid #888;background:#fafafa'>"
        f"<h2 style='margin-top:0'>Loopline drift verdict: {verdict}</h2>"
        f"<p>{html.escape(result.reason)}.</p><p><i>{html.escape(note)}</i></p>"
        "<details><summary>All-row statistics per feature</summary>"
        "<table style='border-collapse:collapse' border='1' cellpadding='3'>"
        "<tr><th>feature</th><th>test</th><th>score</th><th>PSI</th><th>null rate change</th><th>drifted</th></tr>"
        + "".join(rows)
        + "</table></details></div>"
    )


def summary_markdown(result: DriftResult, *, top: int = 10) -> str:
    """The most drifted features first (drifted ones, then by PSI)."""
    lines = [
        f"## Data drift: {'DRIFTED' if result.drifted else 'no drift'}",
        "",
        f"{result.reason}; dataset threshold {result.drift_share_threshold:.0%}"
        + (f", critical features: {', '.join(result.critical_features)}" if result.critical_features else "")
        + f". {result.reference_rows:,} reference rows, {result.current_rows:,} current rows, every row counted.",
        "",
        "| feature | test | score | threshold | PSI | null rate change | drifted |",
        "|---|---|---|---|---|---|---|",
    ]
    items = list(result.features.items()) + list(result.predictions.items())
    ranked = sorted(items, key=lambda kv: (not kv[1]["drifted"], -kv[1]["psi"]))
    for name, f in ranked[:top]:
        lines.append(
            f"| {name} | {f['test']} | {f['score']:.4g} | {f['threshold']:g} | {f['psi']:.4f} | "
            f"{f['null_rate_change']:+.1%} | {'yes' if f['drifted'] else 'no'} |"
        )
    if len(ranked) > top:
        lines.append(f"\n{len(ranked) - top} more features in the JSON table.")
    return "\n".join(lines) + "\n"


def detect(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec | None = None,
    *,
    report_path: str | Path | None = None,
    settings: DriftSettings | None = None,
    drift_share: float | None = None,
    model_dir: str | Path | None = None,
    report_sample_rows: int = DEFAULT_REPORT_SAMPLE,
) -> DriftResult:
    """Drift of `current` against `reference` on the spec's features (or every column), with the
    Evidently report written to `report_path` when given."""
    settings = settings or DriftSettings()
    if drift_share is not None:
        settings = dataclasses.replace(settings, drift_share=drift_share)
    kinds = feature_kinds(reference, spec)
    predictions = predict_frames(model_dir, reference, current) if model_dir else None
    result = compute(reference, current, kinds, settings, predictions=predictions)
    if report_path is not None:
        write_report(reference, current, kinds, result, settings, report_path, sample_rows=report_sample_rows)
    return result
