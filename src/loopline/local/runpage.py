"""The run page: one HTML file per local run that a person opens in a browser, offline.

It shows each pipeline's steps as a graph (inline SVG) with their status and time, then every
step: its parameters and input artifacts, its outputs, and what it made to look at (HTML reports
copied next to the page and linked, Markdown rendered, Metrics as tables, ClassificationMetrics
as a confusion matrix and a ROC curve drawn in SVG), then the registry's versions and aliases
and the endpoint. No scripts, no fonts or styles from the network. The drawings are
`loopline.local.runpage_svg`'s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loopline.core import html_safety
from loopline.core.masking import mask
from loopline.local import records as localruns
from loopline.local.records import RunRecord, StepRecord
from loopline.local.runpage_svg import COLOURS, confusion_matrix_svg, esc, graph_svg, roc_svg

FILES = "files"


def write(record: RunRecord) -> Path:
    """Render the run's page next to its record; return the page's path."""
    files = record.path / FILES
    page = render(record, files_folder=files)
    record.page_path.write_text(mask(page), encoding="utf-8")
    return record.page_path


# ---------------------------------------------------------------------------------------------
# What steps made.


def markdown_html(text: str) -> str:
    from markdown_it import MarkdownIt

    # a line break in the source is a line break on the page (the reports write "key: value" lines)
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table").render(text)


def metrics_table(metrics: dict[str, Any], *, columns: int = 3) -> str:
    """Name and value per row; a long list is laid out in up to `columns` tables side by side."""
    items = list(metrics.items())
    count = max(1, min(columns, -(-len(items) // 8)))
    per = max(1, -(-len(items) // count))
    tables = []
    for start in range(0, len(items), per):
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_number(v))}</td></tr>" for k, v in items[start:start + per])
        tables.append(f'<table class="metrics"><tbody>{rows}</tbody></table>')
    return f'<div class="tables">{"".join(tables)}</div>'


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"{value:,}"


def _read_text(uri: str) -> str | None:
    path = Path(uri)
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def artifact_html(name: str, kind: str, artifact: dict[str, Any], *, copy_to: Path, copy_name: str) -> str:
    """One output artifact, shown as what it is."""
    uri, meta = artifact.get("uri", ""), artifact.get("metadata", {}) or {}
    title = f'<h4>{esc(name)} <span class="kind">{esc(kind.removeprefix("system."))}</span></h4>'
    if kind == "system.Metrics":
        return title + (metrics_table(meta) if meta else "<p>no metrics</p>")
    if kind == "system.ClassificationMetrics":
        figures = []
        if meta.get("confusionMatrix"):
            figures.append(f"<figure>{confusion_matrix_svg(meta['confusionMatrix'])}<figcaption>confusion matrix</figcaption></figure>")
        if meta.get("confidenceMetrics"):
            figures.append(f"<figure>{roc_svg(meta['confidenceMetrics'])}<figcaption>ROC curve</figcaption></figure>")
        return title + f'<div class="figures">{"".join(figures) or "<p>nothing recorded</p>"}</div>'
    if kind == "system.Markdown":
        text = _read_text(uri)
        return title + (f'<div class="markdown">{markdown_html(text)}</div>' if text is not None else f"<p>missing: <code>{esc(uri)}</code></p>")
    if kind == "system.HTML":
        source = Path(uri)
        if not source.is_file():
            return title + f"<p>missing: <code>{esc(uri)}</code></p>"
        copy_to.mkdir(parents=True, exist_ok=True)
        sandbox = html_safety.SANDBOX if _copy_masked(source, copy_to / copy_name) else ""
        link = f"{FILES}/{copy_name}"
        return (title + f'<p><a class="report" href="{esc(link)}" target="_blank">open the report</a> '
                f'({source.stat().st_size / 1024:,.0f} KiB) {_meta_line(meta)}</p>'
                f'<details><summary>show it here</summary><iframe loading="lazy" sandbox="{sandbox}" '
                f'referrerpolicy="no-referrer" src="{esc(link)}" title="{esc(name)}"></iframe></details>')
    return (f'<details class="data"><summary>{esc(name)} <span class="kind">{esc(kind.removeprefix("system."))}</span> '
            f'<code>{esc(uri)}</code></summary>' + (metrics_table(meta) if meta else "") + "</details>")


def _copy_masked(source: Path, target: Path) -> bool:
    """A report copied beside the page, without the credentials it may quote. A report Loopline
    wrote (it carries Loopline's policy) keeps its scripts: True. Any other HTML gets a policy
    that runs no script: False."""
    try:
        page = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        page = source.read_text(encoding="latin-1")
    ours = html_safety.has_policy(page)
    target.write_text(mask(page if ours else html_safety.with_policy(page)), encoding="utf-8")
    return ours


def _meta_line(meta: dict) -> str:
    return " ".join(f'<span class="tag">{esc(k)}: {esc(_number(v))}</span>' for k, v in meta.items())


def step_html(step: StepRecord, spec: dict[str, Any], copy_to: Path, anchor: str) -> str:
    outputs = localruns.read_outputs(step.output_file) if step.output_file else {"parameters": {}, "artifacts": {}}
    types = dict(step.output_types)
    component = spec.get("components", {}).get(f"comp-{step.task}", {})
    for name, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        types.setdefault(name, definition.get("artifactType", {}).get("schemaTitle", ""))
    status = step.status
    headline = step.headline if status == "SUCCESS" else step.cause
    parts = [
        f'<section class="step" id="{anchor}" data-task="{esc(step.task)}" data-status="{status}">',
        f'<h3><span class="badge" style="background:{COLOURS.get(status, "#868e96")}">{esc(status.lower())}</span> '
        f'{esc(step.task)} <span class="time">{step.seconds:.1f}s</span></h3>',
        f'<p class="headline{" cause" if status == "FAILURE" else ""}">{esc(headline)}</p>' if headline else "",
    ]
    params = step.inputs.get("parameters", {})
    if params:
        parts.append("<details><summary>parameters</summary>" + metrics_table(params) + "</details>")
    inputs = step.inputs.get("artifacts", {})
    if inputs:
        items = "".join(f"<li>{esc(n)}: <code>{esc(a.get('uri', ''))}</code></li>" for n, a in inputs.items())
        parts.append(f"<details><summary>input artifacts</summary><ul>{items}</ul></details>")
    out_params = outputs["parameters"]
    if out_params:
        parts.append("<h4>outputs</h4>" + metrics_table(out_params))
    shown_first = {"system.Metrics": 1, "system.ClassificationMetrics": 2, "system.Markdown": 3, "system.HTML": 4}
    ordered = sorted(outputs["artifacts"].items(), key=lambda item: shown_first.get(types.get(item[0], ""), 9))
    heading = False
    for name, artifact in ordered:
        kind = types.get(name, "")
        if kind not in shown_first and not heading:
            parts.append("<h4>other artifacts</h4>")
            heading = True
        copy_name = f"{step.pipeline}--{step.task}--{name}.html"
        parts.append(f'<div class="artifact" data-kind="{esc(kind)}">'
                     + artifact_html(name, kind, artifact, copy_to=copy_to, copy_name=copy_name) + "</div>")
    parts.append("</section>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------


def registry_html(summary: dict[str, Any]) -> str:
    if not summary:
        return ""
    from loopline import registry

    aliases = summary.get("aliases") or {}
    alias_text = ", ".join(f"{esc(k)} → v{esc(v)}" for k, v in sorted(aliases.items())) or "none"
    rows = []
    for version in summary.get("versions") or []:
        tags = version.get("tags", {})
        rows.append(
            f"<tr><td>v{esc(version['version'])}</td><td>{esc(', '.join(version.get('aliases', [])))}</td>"
            f"<td>{esc(tags.get(registry.TAG_PIPELINE_RUN, ''))}</td><td>{esc(tags.get(registry.TAG_DATA_URI, ''))}</td>"
            f"<td>{esc(tags.get(registry.TAG_GATE_CHAMPION, ''))}</td></tr>"
        )
    table = ('<table class="versions"><thead><tr><th>version</th><th>aliases</th><th>pipeline run</th><th>trained on</th>'
             f'<th>judged against champion</th></tr></thead><tbody>{"".join(rows)}</tbody></table>') if rows else "<p>no versions</p>"
    parts = ['<section class="registry" id="registry"><h2>Registry</h2>',
             f'<p>model registry: <code>{esc(summary.get("tracking_uri", ""))}</code></p>',
             f'<p class="aliases">aliases: {alias_text}</p>', table]
    if summary.get("aliases_error"):
        parts.append(f"<p>{esc(summary['aliases_error'])}</p>")
    parts.append("</section>")
    endpoint = summary.get("endpoint")
    prediction = summary.get("prediction")
    parts.append('<section class="endpoint" id="endpoint"><h2>Endpoint</h2>')
    if endpoint and prediction:
        parts.append(f"<p><code>{esc(endpoint)}</code> served v{esc(prediction.get('served_version', ''))}; "
                     f"server {esc(summary.get('server', ''))}</p>"
                     f"<h4>request</h4><pre>{esc(json.dumps(prediction['request']))}</pre>"
                     f"<h4>response</h4><pre>{esc(json.dumps(prediction['response']))}</pre>")
    else:
        parts.append("<p>no endpoint is serving</p>")
    parts.append("</section>")
    return "".join(parts)


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;margin:0;background:#f8f9fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px} h2{margin:32px 0 8px;border-bottom:2px solid #dee2e6;padding-bottom:4px}
h3{margin:0 0 6px;font-size:18px} h4{margin:14px 0 6px;font-size:15px}
.badge{color:#fff;border-radius:4px;padding:1px 8px;font-size:13px;vertical-align:2px}
.time{color:#868e96;font-weight:normal;font-size:14px} .kind{color:#868e96;font-weight:normal;font-size:12px}
.step{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:14px 18px;margin:14px 0}
.headline{margin:0 0 8px;font-weight:500} .cause{color:#c92a2a}
.graph{display:block;margin:8px auto;max-width:100%;height:auto}
table{border-collapse:collapse;margin:6px 0;font-size:13px} th,td{border:1px solid #dee2e6;padding:3px 8px;text-align:left}
th{background:#f1f3f5;font-weight:600} table.metrics th{background:#f8f9fa;font-weight:500}
.figures{display:flex;gap:24px;flex-wrap:wrap} figure{margin:0} figcaption{text-align:center;color:#495057;font-size:13px}
iframe{width:100%;height:640px;border:1px solid #dee2e6;border-radius:6px;background:#fff}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f3f5;border-radius:3px;padding:1px 4px}
pre{padding:8px;overflow-x:auto} .tag{color:#495057;font-size:12px;margin-left:6px}
.glance{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:10px 10px 10px 32px;margin:14px 0}
.markdown table{font-size:13px} .markdown h1,.markdown h2,.markdown h3{font-size:16px;border:none;margin:12px 0 6px;padding:0}
.tables{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start} details.data{margin:4px 0} details.data code{margin-left:6px} .meta{color:#495057} summary{cursor:pointer;color:#1c7ed6}
"""


def render(record: RunRecord, *, files_folder: Path) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started))
    status = record.status
    head = (
        f'<header><h1>Loopline run {esc(record.id)} <span class="badge" style="background:{COLOURS.get(status, "#868e96")}">'
        f"{esc(status.lower())}</span></h1>"
        f'<p class="meta">started {esc(started)} · {record.seconds:.0f}s · <code>{esc(record.command)}</code> · '
        f'<a href="{localruns.LOG_FILE}">the full log</a></p>'
        + (f'<p class="cause">{esc(record.error)}</p>' if record.error else "")
        + "</header>"
    )
    body = [head, glance_html(record)]
    for pipeline in record.pipelines:
        spec = _load_spec(record, pipeline.name)
        steps = {s.task: s for s in record.steps_of(pipeline.name)}

        def anchor(task: str, name: str = pipeline.name) -> str:
            return f"step-{name}-{task}"

        title = localruns.PIPELINE_TITLES.get(pipeline.name, pipeline.name).capitalize()
        body.append(f'<section class="pipeline" id="pipeline-{esc(pipeline.name)}" data-pipeline="{esc(pipeline.name)}"><h2>{esc(title)} pipeline '
                    f'<span class="time">{esc(pipeline.name)} · {esc(pipeline.status.lower())}</span></h2>')
        if pipeline.run_dir:
            body.append(f'<p class="meta">artifacts: <code>{esc(pipeline.run_dir)}</code></p>')
        body.append(graph_svg(spec, steps, anchor))
        for step in record.steps_of(pipeline.name):
            body.append(step_html(step, spec, files_folder, anchor(step.task)))
        body.append("</section>")
    body.append(registry_html(record.summary))
    page = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Loopline run {esc(record.id)}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")
    return html_safety.with_policy(page, frames=True)  # no script at all; reports only in sandboxed frames


def glance_html(record: RunRecord) -> str:
    """The run in a few lines: each pipeline's outcome and its deciding steps, the champion."""
    items = []
    for pipeline in record.pipelines:
        steps = record.steps_of(pipeline.name)
        failed = [s for s in steps if s.status == "FAILURE"]
        deciding = [s for s in steps if s.component in ("detect-drift", "evaluate-model", "register-model", "deploy-model")]
        said = "; ".join(s.headline for s in deciding if s.headline)
        if failed:
            said = f"{failed[0].task} failed: {failed[0].cause}"
        items.append(f'<li><a href="#pipeline-{esc(pipeline.name)}">{esc(pipeline.name)}</a>: '
                     f"{len(steps) - len(failed)} of {len(steps)} steps succeeded · {esc(said)}</li>")
    aliases = (record.summary or {}).get("aliases") or {}
    if aliases:
        named = ", ".join(f"{k} → v{v}" for k, v in sorted(aliases.items()))
        items.append(f'<li><a href="#registry">registry</a>: {esc(named)}'
                     + (f' · <a href="#endpoint">endpoint</a> <code>{esc(record.summary["endpoint"])}</code>'
                        if record.summary.get("endpoint") else "") + "</li>")
    return f'<ul class="glance">{"".join(items)}</ul>' if items else ""


def _load_spec(record: RunRecord, pipeline: str) -> dict[str, Any]:
    try:
        return json.loads(record.spec_path(pipeline).read_text())
    except (OSError, ValueError):
        return {}
