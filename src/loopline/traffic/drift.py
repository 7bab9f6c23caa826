"""Drift of served traffic: the traffic window (traffic_window.py) against the champion's stored
reference profile (reference_profile.py), with a verdict of its own when there is too little
traffic to judge.

The verdict is one of three:

- "drifted" and "no drift": the feature drift of the window's rows against the profile, as
  `reference_profile.compute` judges it (the same statistics and thresholds as detect_drift);
- "not enough traffic": fewer than `min_window_rows` request/response pairs, or nothing logged.
  It never retrains, and it never counts as "no drift": `drifted` is False and `judged` is False.

Nothing is scored again: the rows are what the model was asked, as logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline.core.errors import DataError
from loopline.data import spec as dataset_spec
from loopline.drift import reference_profile
from loopline.drift.settings import DriftResult, DriftSettings
from loopline.traffic import window as traffic_window

MIN_WINDOW_ROWS = 200  # pairs a window needs before its drift is judged
DRIFTED, NO_DRIFT, NOT_ENOUGH = "drifted", "no drift", "not enough traffic"


@dataclass
class TrafficVerdict:
    verdict: str  # DRIFTED, NO_DRIFT or NOT_ENOUGH
    line: str  # one line for the step and the console
    counts: traffic_window.WindowCounts
    result: DriftResult | None = None  # None unless the drift was judged

    @property
    def drifted(self) -> bool:
        return self.verdict == DRIFTED

    @property
    def judged(self) -> bool:
        return self.verdict != NOT_ENOUGH


def judge(profile: dict, traffic_log_uri: str, *, model_name: str, settings: DriftSettings | None = None,
          min_window_rows: int = MIN_WINDOW_ROWS, window_hours: float = 24.0, **window_options) -> TrafficVerdict:
    """The verdict on the last `window_hours` of `model_name`'s traffic against `profile`."""
    if min_window_rows < 1:
        raise DataError(f"min_window_rows must be at least 1, got {min_window_rows}")
    settings = settings or DriftSettings()
    features = list(profile["features"])
    try:
        window = traffic_window.build_window(traffic_log_uri, model_name=model_name, window_hours=window_hours,
                                             features=features, **window_options)
    except traffic_window.NoTraffic as exc:
        return TrafficVerdict(NOT_ENOUGH, f"{NOT_ENOUGH}: {exc}", traffic_window.WindowCounts())
    counts = window.counts
    if counts.pairs < min_window_rows:
        return TrafficVerdict(NOT_ENOUGH, f"{NOT_ENOUGH}: {counts.pairs:,} pairs in the last {window_hours:g} h, "
                              f"fewer than min_window_rows {min_window_rows:,} ({counts.line()})", counts)
    kinds = {name: entry["kind"] for name, entry in profile["features"].items()}
    spec = dataset_spec.DatasetSpec(target=profile.get("target", ""), features=kinds, classes=[])
    result = reference_profile.compute(profile, dataset_spec.conform(window.frame[features], spec), settings)
    verdict = DRIFTED if result.drifted else NO_DRIFT
    line = (f"{verdict}: {result.share_drifted:.0%} of features drifted ({len(result.drifted_features)}) on "
            f"{counts.rows:,} rows of {counts.pairs:,} logged pairs in the last {window_hours:g} h")
    return TrafficVerdict(verdict, line, counts, result)
