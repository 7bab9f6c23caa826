"""The `load_traffic` step: the traffic window of one model (traffic_window.py) as a Dataset, its
counts as Metrics and in the step's line."""

from __future__ import annotations

import logging
from pathlib import Path

from loopline.core.files import write_text
from loopline.serving import inference_service
from loopline.traffic import window as traffic_window

log = logging.getLogger(__name__)


def run(*, traffic_log_uri: str, model_name: str, features: list, window, metrics, summary,
        settings: traffic_window.WindowSettings) -> int:
    """Write the window (Parquet) and its counts; returns the number of request/response pairs.
    An empty window is a window of 0 pairs (the caller decides what too little traffic means)."""
    try:
        built = traffic_window.build_window(
            traffic_log_uri, model_name=model_name, namespace=settings.namespace,
            inference_service=settings.inference_service or inference_service.isvc_name(model_name),
            window_hours=settings.window_hours, version=settings.version, endpoint=settings.endpoint,
            features=list(features) or None, max_bad_share=settings.max_bad_share,
        )
        frame, counts, line = built.frame, built.counts, built.counts.line()
    except traffic_window.NoTraffic as exc:
        import pandas as pd

        frame, counts, line = pd.DataFrame({name: [] for name in (*features, *traffic_window.META)}), \
            traffic_window.WindowCounts(), str(exc)
    Path(window.path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(window.path, index=False)
    for name, value in counts.metrics().items():
        metrics.log_metric(name, value)
    write_text(summary.path, f"## Traffic window of {model_name}\n\n{line}\n")
    window.metadata.update({"pairs": counts.pairs, "rows": counts.rows, "traffic_log_uri": traffic_log_uri,
                            "window_hours": settings.window_hours})
    log.info("load-traffic: %s", line)
    return counts.pairs

