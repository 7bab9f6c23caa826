"""The `detect_drift` step: drift of the current window against the reference, every output
written before the verdict returns."""

from __future__ import annotations

import json
import logging

from loopline import drift, registry
from loopline.core.files import write_text
from loopline.data import checks as input_checks
from loopline.data import spec as dataset_spec
from loopline.data import tables as data_lib
from loopline.drift import reference_profile

log = logging.getLogger(__name__)


def run(*, current_data_uri: str, target: str, report, metrics, summary, table, reference_data_uri: str,
        tracking_uri: str, model_name: str, settings: drift.DriftSettings) -> bool:
    """Drift of the current window against the reference (by default the champion's training
    data, as recorded at registration); every output is written before the verdict returns."""
    if not reference_data_uri:
        profile, version = _champion_profile(tracking_uri, model_name)
        if profile is not None:
            log.info("reference: the profile stored with the champion (version %s) of %d training rows",
                     version, profile["rows"])
            current_raw = drift.last_rows(data_lib.read_table(current_data_uri), settings.current_last_rows)
            kinds = {name: entry["kind"] for name, entry in profile["features"].items()}
            spec = dataset_spec.DatasetSpec(target=profile["target"], features=kinds, classes=[])
            result = reference_profile.compute(profile, dataset_spec.conform(current_raw, spec), settings)
            write_text(report.path, _profile_report_html(result, version))
            return _outputs(result, metrics, summary, table, report,
                            reference_uri=f"models:/{model_name}/{version}#{reference_profile.PROFILE_FILE}",
                            current_uri=current_data_uri)
        reference_data_uri = registry.champion_data_uri(tracking_uri, model_name)
        log.info("reference window: the champion's training data %s", reference_data_uri)
    reference_raw = data_lib.read_table(reference_data_uri)
    spec = input_checks.build_spec(
        reference_raw, target=target, feature_kinds=settings.feature_kinds, ignore_columns=settings.ignore_columns,
        source_uri=reference_data_uri,
    )
    current_raw = drift.last_rows(data_lib.read_table(current_data_uri), settings.current_last_rows)
    drift.check_windows(reference_raw, current_raw, list(spec.features))
    reference, current = dataset_spec.conform(reference_raw, spec), dataset_spec.conform(current_raw, spec)
    result = drift.detect(reference, current, spec, report_path=report.path, settings=settings)
    return _outputs(result, metrics, summary, table, report, reference_uri=reference_data_uri,
                    current_uri=current_data_uri)


def _outputs(result, metrics, summary, table, report, *, reference_uri: str, current_uri: str) -> bool:
    """Every output of the step but the report; returns the verdict."""
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
                                  "reference_uri": reference_uri, "current_uri": current_uri})
    return result.drifted


def _champion_profile(tracking_uri: str, model_name: str) -> tuple[dict | None, str]:
    """The reference profile stored with the champion, and its version; (None, "") when there is
    no registry to ask or the champion has no profile (trained before profiles were stored)."""
    import tempfile

    if not tracking_uri or not model_name:
        return None, ""
    version = registry.alias_version(tracking_uri, model_name, registry.CHAMPION)
    if version is None:
        return None, ""
    with tempfile.TemporaryDirectory(prefix="loopline-profile-") as folder:
        model_dir = registry.saved_model_dir(tracking_uri, model_name, version, folder)
        return reference_profile.read(model_dir), version


def _profile_report_html(result, version: str) -> str:
    """The report of a drift check against a stored profile: the summary as a page (the visual
    report compares rows, which a profile does not hold)."""
    import html

    return ("<!doctype html><html><head><meta charset='utf-8'><title>Loopline drift</title></head><body>"
            f"<p>Reference: the profile stored with the champion, version {html.escape(version)}, "
            f"of {result.reference_rows} training rows.</p><pre>{html.escape(drift.summary_markdown(result))}</pre>"
            "</body></html>\n")

