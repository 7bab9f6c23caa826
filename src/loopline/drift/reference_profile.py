"""The reference profile: what drift statistics need of the training data, stored with the model.

Training writes it next to the SavedModel (`PROFILE_FILE`), so every registered version carries
the profile of the rows it was trained on, and the drift monitor compares a current window with
it without reading the reference data again. Per feature:

- numeric: the PSI bins (edges between the reference's deciles, as `drift.numeric_statistics`
  draws them) and the reference's count in each; `QUANTILES` quantiles of its values (its
  empirical distribution, for KS and Wasserstein); its standard deviation, rows and null rate;
- categorical: the count of every category (the `MAX_CATEGORIES` most frequent, the rest
  summed under `OTHER`), rows and null rate.

PSI, the categorical statistics and the null rates are exact. KS and Wasserstein use the
reference's quantiles in place of its values (the KS statistic is off by at most 1/(QUANTILES-1))
and the KS p-value is the asymptotic one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline import drift
from loopline.core.errors import DataError
from loopline.data.spec import CATEGORICAL, NUMERIC, DatasetSpec

log = logging.getLogger(__name__)

PROFILE_FILE = "reference_profile.json"
FORMAT = "loopline.drift.reference_profile/v1"
QUANTILES = 1001
TAIL_VALUES = 100  # the smallest and largest values kept as they are
MAX_CATEGORIES = 1000
OTHER = "(other)"


def _numeric(values: np.ndarray) -> dict[str, Any]:
    ordered = np.sort(values)
    edges = np.unique(drift._quantiles_sorted(ordered, np.linspace(0.0, 1.0, drift.PSI_BINS + 1)[1:-1]))
    counts = np.diff(np.concatenate([[0], np.searchsorted(ordered, edges, side="left"), [len(ordered)]]))
    # quantiles on an even grid, and the extreme values themselves (the tails of a skewed column
    # hold much of the Wasserstein distance)
    last = len(ordered) - 1
    tail = np.arange(min(TAIL_VALUES, len(ordered)))
    probabilities = np.unique(np.concatenate([np.linspace(0.0, 1.0, QUANTILES), tail / max(last, 1),
                                              (last - tail) / max(last, 1)]))
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "probabilities": probabilities.tolist(),
        "quantiles": drift._quantiles_sorted(ordered, probabilities).tolist(),
        "std": float(np.std(ordered)),
    }


def _categorical(values: pd.Series) -> dict[str, Any]:
    counts = values.astype(str).value_counts()
    kept = counts.iloc[:MAX_CATEGORIES]
    out = {str(k): int(v) for k, v in kept.items()}
    if len(counts) > MAX_CATEGORIES:
        out[OTHER] = int(counts.iloc[MAX_CATEGORIES:].sum())
    return {"counts": out}


def build(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, Any]:
    """The profile of `frame` (the rows a model trained on) for the spec's features."""
    features = {}
    for name, kind in spec.features.items():
        if name not in frame.columns:
            raise DataError(f"the training data lacks feature column '{name}' for the reference profile")
        column = frame[name]
        values = column.dropna()
        entry: dict[str, Any] = {"kind": kind, "rows": int(len(column)), "null_rate": float(column.isna().mean())}
        if kind == NUMERIC:
            finite = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            entry.update(_numeric(finite) if len(finite) else
                         {"edges": [], "counts": [], "probabilities": [], "quantiles": [], "std": 0.0})
        else:
            entry.update(_categorical(values))
        features[name] = entry
    return {"format": FORMAT, "rows": int(len(frame)), "target": spec.target, "features": features}


def write(profile: dict[str, Any], model_dir: str | Path) -> Path:
    path = Path(model_dir) / PROFILE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile))
    return path


def read(model_dir: str | Path) -> dict[str, Any] | None:
    """The profile stored with a model, or None when the model has none."""
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    profile = json.loads(path.read_text())
    if not isinstance(profile, dict) or profile.get("format") != FORMAT:
        raise DataError(f"{path} is not a Loopline reference profile ({FORMAT})")
    return profile


def _reference_cdf(quantiles: np.ndarray, probabilities: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The reference's CDF from its quantiles: at a quantile's value, the top of its run of
    equal quantiles (a step, as discrete values have); between two quantiles, linear."""
    last = len(quantiles) - 1
    k = np.clip(np.searchsorted(quantiles, x, side="right") - 1, 0, last)
    upper = np.minimum(k + 1, last)
    width = quantiles[upper] - quantiles[k]
    inside = np.where(width > 0, (x - quantiles[k]) / np.where(width > 0, width, 1.0), 0.0)
    cdf = probabilities[k] + np.clip(inside, 0.0, 1.0) * (probabilities[upper] - probabilities[k])
    return np.where(x < quantiles[0], 0.0, np.where(x >= quantiles[-1], 1.0, cdf))


def numeric_statistics(entry: dict[str, Any], current: np.ndarray) -> dict[str, float]:
    """`drift.numeric_statistics` with the reference given by its profile."""
    n1 = int(sum(entry["counts"]))
    if n1 == 0:
        raise DataError("the reference profile holds no values of this column")
    cur_sorted = np.sort(current)
    n2 = len(cur_sorted)
    edges = np.asarray(entry["edges"], dtype=np.float64)
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur_sorted, edges, side="left"), [n2]]))
    psi = drift.psi_from_counts(np.asarray(entry["counts"], dtype=np.float64), cur_counts)
    quantiles = np.asarray(entry["quantiles"], dtype=np.float64)
    grid = np.unique(np.concatenate([quantiles, cur_sorted]))
    cdf_ref = _reference_cdf(quantiles, np.asarray(entry["probabilities"], dtype=np.float64), grid)
    cdf_cur = np.searchsorted(cur_sorted, grid, side="right") / n2
    gaps = np.abs(cdf_ref - cdf_cur)
    ks_stat = float(gaps.max())
    wasserstein = float(np.sum(gaps[:-1] * np.diff(grid)))
    norm = max(float(entry["std"]), 0.001)
    return {"psi": psi, "ks_statistic": ks_stat, "ks_p_value": drift.ks_p_value(ks_stat, n1, n2),
            "wasserstein": wasserstein / norm}


def compute(profile: dict[str, Any], current: pd.DataFrame, settings: drift.DriftSettings) -> drift.DriftResult:
    """Drift of `current` against the reference profile: every feature's statistics, the feature
    verdicts and the dataset verdict, as `drift.compute` gives them."""
    features_profile = profile["features"]
    missing = [c for c in features_profile if c not in current.columns]
    if missing:
        raise DataError(f"the current data lacks column(s) the reference profile has: {', '.join(missing)}")
    unknown = [c for c in settings.critical_features if c not in features_profile]
    if unknown:
        raise DataError(f"critical_features names columns that are not features: {', '.join(unknown)}")
    if current.empty:
        raise DataError("the current data has no rows")
    log.info("computing drift on %d features against the reference profile of %d training rows: %d current rows",
             len(features_profile), profile["rows"], len(current))
    features = {}
    for name, entry in features_profile.items():
        column = current[name]
        values = column.dropna()
        if values.empty:
            raise DataError(f"column '{name}' has no values in the current data (all null): drift cannot be measured")
        if entry["kind"] == NUMERIC:
            array = drift._finite_array(name, values, "current")
            stats_: dict[str, Any] = numeric_statistics(entry, array)
        else:
            ref_counts = pd.Series(entry["counts"], dtype=np.float64)
            cur = values.astype(str)
            if OTHER in entry["counts"]:
                cur = cur.where(cur.isin(list(entry["counts"])), OTHER)
            stats_ = drift.categorical_statistics_from_counts(ref_counts, cur.value_counts())
        features[name] = drift.verdict(entry["kind"] if entry["kind"] == NUMERIC else CATEGORICAL, stats_,
                                       float(entry["null_rate"]), float(column.isna().mean()), settings)
    return drift.summarize(features, {}, settings, reference_rows=int(profile["rows"]), current_rows=len(current))
