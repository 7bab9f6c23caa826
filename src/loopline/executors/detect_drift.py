"""The `detect_drift` step: drift of the current window against the reference, every output
written before the verdict returns."""

from __future__ import annotations

import json
import logging

from loopline import data as data_lib
from loopline import drift
from loopline.files import write_text

log = logging.getLogger(__name__)


def run(
    *,
    current_data_uri: str,
    target: str,
    report,
    metrics,
    summary,
    table,
    reference_data_uri: str = "",
    tracking_uri: str = "",
    model_name: str = "",
    feature_kinds: dict | None = None,
    ignore_columns: list | None = None,
    drift_share: float = 0.5,
    numeric_test: str = "psi",
    categorical_test: str = "jensenshannon",
    thresholds: dict | None = None,
    critical_features: list | None = None,
    current_last_rows: int = 0,
    report_sample_rows: int = 50_000,
) -> bool:
    """Drift of the current window against the reference (by default the champion's training
    data, as recorded at registration); every output is written before the verdict returns."""
    settings = drift.DriftSettings(
        drift_share=drift_share, numeric_test=numeric_test, categorical_test=categorical_test,
        thresholds=dict(thresholds or {}), critical_features=list(critical_features or []),
    )
    settings.check()  # before any data is read
    if not reference_data_uri:
        from loopline import registry

        reference_data_uri = registry.champion_data_uri(tracking_uri, model_name)
        log.info("reference window: the champion's training data %s", reference_data_uri)
    reference_raw = data_lib.read_table(reference_data_uri)
    spec = data_lib.build_spec(
        reference_raw, target=target, feature_kinds=feature_kinds, ignore_columns=ignore_columns,
        source_uri=reference_data_uri,
    )
    current_raw = drift.last_rows(data_lib.read_table(current_data_uri), current_last_rows)
    drift.check_windows(reference_raw, current_raw, list(spec.features))
    reference, current = data_lib.conform(reference_raw, spec), data_lib.conform(current_raw, spec)
    result = drift.detect(reference, current, spec, report_path=report.path, settings=settings,
                          report_sample_rows=report_sample_rows)
    metrics.log_metric("share_drifted", round(result.share_drifted, 6))
    metrics.log_metric("drifted", 1.0 if result.drifted else 0.0)
    metrics.log_metric("drifted_features", len(result.drifted_features))
    for name, feature in result.features.items():
        metrics.log_metric(f"drift_{name}", round(feature["score"], 6))
        metrics.log_metric(f"psi_{name}", round(feature["psi"], 6))
    write_text(summary.path, drift.summary_markdown(result))
    write_text(table.path, json.dumps(result.to_dict(), indent=1))
    for artifact in (report, table):
        artifact.metadata.update({"share_drifted": result.share_drifted, "drifted": result.drifted,
                                  "reference_uri": reference_data_uri, "current_uri": current_data_uri})
    return result.drifted

