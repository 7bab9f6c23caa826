"""The drift report: Evidently's DataDriftPreset on a seeded sample of each window, below Loopline's
all-row verdicts, and the Markdown summary of the most drifted features."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd

from loopline.core import html_safety
from loopline.data.spec import CATEGORICAL, NUMERIC
from loopline.drift.settings import (
    EVIDENTLY_METHODS,
    DriftResult,
    DriftSettings,
)

log = logging.getLogger(__name__)

EVIDENTLY_DATA = "<script>\n"  # the first script of Evidently's page: `var <id> = <JSON>;` twice


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
    seed: int = 0,
) -> Path:
    """Evidently's DataDriftPreset report, on a seeded sample of each window when it is larger
    than `settings.report_sample_rows`, with Loopline's all-row verdicts at the top of the page."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(kinds)
    ref_sample = _sample(reference[columns], settings.report_sample_rows, seed)
    cur_sample = _sample(current[columns], settings.report_sample_rows, seed + 1)
    numeric = [c for c, k in kinds.items() if k == NUMERIC]
    categorical = [c for c, k in kinds.items() if k == CATEGORICAL]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    log.info("rendering the Evidently report on %d reference and %d current rows", len(ref_sample), len(cur_sample))
    preset = DataDriftPreset(
        drift_share=settings.drift_share,
        num_method=EVIDENTLY_METHODS[settings.numeric_test],
        cat_method=EVIDENTLY_METHODS[settings.categorical_test],
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
    # Evidently writes column names and values into its script unescaped: escaped first, then
    # only the scripts of the page as written may run
    page = html_safety.escape_script_data(path.read_text(encoding="utf-8"), EVIDENTLY_DATA, lines=2)
    marker = page.find("<body")
    at = page.find(">", marker) + 1 if marker >= 0 else 0
    path.write_text(html_safety.with_policy(page[:at] + banner + page[at:], scripts=True), encoding="utf-8")
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
        f"{html_safety.md(result.reason)}; dataset threshold {result.drift_share_threshold:.0%}"
        + (f", critical features: {html_safety.md(', '.join(result.critical_features))}" if result.critical_features else "")
        + f". {result.reference_rows:,} reference rows, {result.current_rows:,} current rows, every row counted.",
        "",
        "| feature | test | score | threshold | PSI | null rate change | drifted |",
        "|---|---|---|---|---|---|---|",
    ]
    items = list(result.features.items()) + list(result.predictions.items())
    ranked = sorted(items, key=lambda kv: (not kv[1]["drifted"], -kv[1]["psi"]))
    for name, f in ranked[:top]:
        lines.append(
            f"| {html_safety.md(name)} | {f['test']} | {f['score']:.4g} | {f['threshold']:g} | {f['psi']:.4f} | "
            f"{f['null_rate_change']:+.1%} | {'yes' if f['drifted'] else 'no'} |"
        )
    if len(ranked) > top:
        lines.append(f"\n{len(ranked) - top} more features in the JSON table.")
    return "\n".join(lines) + "\n"
