"""The drift step's settings and result: the tests, their thresholds and defaults (DriftSettings),
and what a detection returns (DriftResult)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopline.core import rules
from loopline.core.errors import DataError

PSI_BINS = 10

PSI_EPS = 1e-6

KS_EXACT_MAX_N = 10_000  # scipy's `auto`: exact p-values up to this size, asymptotic above

NUMERIC_TESTS = ("psi", "ks", "wasserstein")

CATEGORICAL_TESTS = ("psi", "jensenshannon", "chisquare")

P_VALUE_TESTS = ("ks", "chisquare")  # drift below the threshold; the others drift above it

DEFAULT_TEST_THRESHOLDS = {"psi": 0.2, "ks": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "chisquare": 0.05}

DEFAULT_NUMERIC_TEST = "psi"

DEFAULT_CATEGORICAL_TEST = "jensenshannon"

DEFAULT_NULL_RATE_THRESHOLD = 0.1  # an absolute change of the null rate that counts as drift

DEFAULT_REPORT_SAMPLE = 50_000  # rows per window given to Evidently for the visual report

PREDICTION_SCORE = "prediction_score"

PREDICTION_CLASS = "prediction_class"

EVIDENTLY_METHODS = {"psi": "psi", "ks": "ks", "wasserstein": "wasserstein", "jensenshannon": "jensenshannon",
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
        rules.number("drift_share", self.drift_share, DataError)
        if not 0.0 < self.drift_share <= 1.0:
            raise DataError(f"drift_share must be in (0, 1], got {self.drift_share}")
        if self.numeric_test not in NUMERIC_TESTS:
            raise DataError(f"numeric_test '{self.numeric_test}' is not one of {', '.join(NUMERIC_TESTS)}")
        if self.categorical_test not in CATEGORICAL_TESTS:
            raise DataError(
                f"categorical_test '{self.categorical_test}' is not one of {', '.join(CATEGORICAL_TESTS)}"
            )
        for test, value in rules.mapping("thresholds", self.thresholds, DataError).items():
            if test not in DEFAULT_TEST_THRESHOLDS:
                raise DataError(f"thresholds: unknown test '{test}' (known: {', '.join(DEFAULT_TEST_THRESHOLDS)})")
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise DataError(f"thresholds: '{test}' must be a non-negative number, got {value!r}")
            if test in P_VALUE_TESTS and not 0.0 < value < 1.0:
                raise DataError(f"thresholds: '{test}' is a p-value threshold and must be in (0, 1), got {value}")
        if isinstance(self.report_sample_rows, (int, float)) and self.report_sample_rows < 0:
            raise DataError(f"report_sample_rows must be 0 (all rows) or positive, got {self.report_sample_rows}")
        if not 0.0 < self.null_rate_threshold <= 1.0:
            raise DataError(f"null_rate_threshold must be in (0, 1], got {self.null_rate_threshold}")
        rules.names("critical_features", self.critical_features, DataError)
        rules.names("ignore_columns", self.ignore_columns, DataError)
        for column, kind in rules.mapping("feature_kinds", self.feature_kinds, DataError).items():
            if kind not in ("numeric", "categorical"):
                raise DataError(f"feature_kinds: column '{column}' has the unknown kind {kind!r} "
                                "(use one of numeric, categorical)")
        rules.number("current_last_rows", self.current_last_rows, DataError, low=0, whole=True)
        rules.number("report_sample_rows", self.report_sample_rows, DataError, low=0, whole=True)

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
