"""The tuning report: Optuna's optimization history, parameter importances and intermediate values
and the final model's training curves, in one HTML file that opens offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopline.core import html_safety
from loopline.tuning.storage import masked
from loopline.tuning.study import TuningSettings, state_counts


def _curve_figure(title: str, curves: dict[str, list[float]]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values in curves.items():
        fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=name))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="value", height=420)
    return fig

def report_html(study, *, settings: TuningSettings, study_name: str, best_curves: dict[str, list[float]],
                final_curves: dict[str, list[float]], path: str | Path) -> Path:
    """Optimization history, parameter importances, intermediate values and training curves.

    plotly.js is inlined once, so the file opens offline (no CDN).
    """
    import html

    import optuna.visualization as vis
    from plotly.offline import get_plotlyjs

    sections: list[tuple[str, Any, str]] = []
    plots = [
        ("Optimization history", lambda: vis.plot_optimization_history(study)),
        ("Intermediate values (the objective after each epoch; pruned trials stop early)",
         lambda: vis.plot_intermediate_values(study)),
        ("Parameter importances (fANOVA)", lambda: vis.plot_param_importances(study)),
    ]
    for title, make in plots:
        try:
            sections.append((title, make(), ""))
        except Exception as exc:  # e.g. importances need two completed trials with different params
            sections.append((title, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    if best_curves:
        sections.append(("Best trial: training curves", _curve_figure("Best trial", best_curves), ""))
    if final_curves:
        sections.append(("Final model (train + validation): training curves",
                         _curve_figure("Final model", final_curves), ""))

    counts = state_counts(study)
    rows = []
    try:
        best = study.best_trial
        rows = [f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in best.params.items()]
        headline = (f"Best {settings.objective} on validation: <b>{best.value:.5f}</b> (trial {best.number}, "
                    f"{settings.direction})")
    except ValueError:
        headline = "No completed trial."
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Loopline tuning: {html.escape(study_name)}</title>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>",
        f"<h1>Tuning: {html.escape(study_name)}</h1>",
        f"<p>{headline}</p>",
        "<p>Trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
        f". Pruner: {html.escape(settings.pruner)}. Storage: {html.escape(masked(settings.storage_url) or 'in memory')}.</p>",
        "<table><tr><th>hyperparameter</th><th>best value</th></tr>" + "".join(rows) + "</table>",
    ]
    for title, fig, note in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if fig is None:
            parts.append(f"<p>Not available: {html.escape(note)}</p>")
        else:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("</body></html>")
    page = html_safety.with_policy("\n".join(parts), scripts=True)  # plotly's scripts, and nothing else
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
