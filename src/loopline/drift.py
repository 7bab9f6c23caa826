"""Data drift between a reference and a current window, with Evidently's DataDriftPreset."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from loopline.data import DatasetSpec
from loopline.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class DriftResult:
    drifted: bool
    share_drifted: float
    drift_share_threshold: float
    features: dict[str, dict] = field(default_factory=dict)  # column -> {method, score, threshold, drifted}


def detect(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    *,
    report_path: str | Path,
    drift_share: float = 0.5,
) -> DriftResult:
    """Run DataDriftPreset on the spec's features; the dataset drifted when at least
    `drift_share` of its features drifted (Evidently's own rule). Writes the HTML report."""
    if not 0.0 < drift_share <= 1.0:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")
    columns = list(spec.features)
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{name} data lacks feature columns: {', '.join(missing)}")
        if frame.empty:
            raise DataError(f"{name} data has no rows")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=spec.numeric, categorical_columns=spec.categorical)
    log.info("computing drift on %d features: %d reference rows, %d current rows", len(columns), len(reference), len(current))
    report = Report([DataDriftPreset(drift_share=drift_share)])
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report_path))

    result = DriftResult(drifted=False, share_drifted=0.0, drift_share_threshold=drift_share)
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            result.share_drifted = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            threshold = float(config.get("threshold") or 0.0)
            score = float(metric["value"])
            method = str(config.get("method") or "")
            # p-value tests drift below the threshold, distances above it
            is_p_value = "p_value" in method or "test" in method.lower()
            drifted = score < threshold if is_p_value else score >= threshold
            result.features[config["column"]] = {
                "method": method, "score": score, "threshold": threshold, "drifted": drifted,
            }
    result.drifted = result.share_drifted >= drift_share
    log.info(
        "drift: %.0f%% of features drifted (threshold %.0f%%): %s",
        100 * result.share_drifted, 100 * drift_share, "DRIFTED" if result.drifted else "no drift",
    )
    return result


def summary_markdown(result: DriftResult) -> str:
    lines = [
        f"## Data drift: {'DRIFTED' if result.drifted else 'no drift'}",
        "",
        f"{result.share_drifted:.0%} of features drifted (dataset threshold {result.drift_share_threshold:.0%}).",
        "",
        "| feature | method | score | threshold | drifted |",
        "|---|---|---|---|---|",
    ]
    ranked = sorted(result.features.items(), key=lambda kv: (not kv[1]["drifted"], -kv[1]["score"]))
    for name, f in ranked:
        lines.append(f"| {name} | {f['method']} | {f['score']:.4f} | {f['threshold']:g} | {'yes' if f['drifted'] else 'no'} |")
    return "\n".join(lines) + "\n"
