"""The run page's drawings, inline SVG with no scripts: the pipeline's graph (from its
PipelineSpec, each step coloured by its status), a confusion matrix and a ROC curve."""

from __future__ import annotations

import html
from typing import Any

from loopline.local.records import StepRecord

COLOURS = {"SUCCESS": "#2b8a3e", "FAILURE": "#c92a2a", "RUNNING": "#e67700", "NOT RUN": "#868e96"}
FILLS = {"SUCCESS": "#ebfbee", "FAILURE": "#fff5f5", "RUNNING": "#fff9db", "NOT RUN": "#f1f3f5"}
ROC_COLOUR = "#1c7ed6"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pipeline_graph(spec: dict[str, Any]) -> tuple[list[str], dict[str, set[str]], dict[str, str]]:
    """The executed tasks of a PipelineSpec (conditions, loops and nested pipelines flattened):
    their names as kfp.local names them, the tasks each waits for, and the group each sits in."""
    components = spec.get("components", {})
    order: list[str] = []
    waits: dict[str, set[str]] = {}
    groups: dict[str, str] = {}

    def leaves(task: dict) -> list[str]:
        ref = task["componentRef"]["name"]
        dag = components.get(ref, {}).get("dag")
        if dag is None:
            return [ref.removeprefix("comp-")]
        return [leaf for inner in dag.get("tasks", {}).values() for leaf in leaves(inner)]

    def walk(dag: dict, inherited: set[str], group: str) -> None:
        tasks = dag.get("tasks", {})
        below = {name: leaves(task) for name, task in tasks.items()}
        for name, task in tasks.items():
            after = set(inherited)
            for dependency in task.get("dependentTasks", []):
                after.update(below.get(dependency, []))
            ref = task["componentRef"]["name"]
            inner = components.get(ref, {}).get("dag")
            if inner is not None:
                condition = task.get("triggerPolicy", {}).get("condition", "")
                walk(inner, after, _group_label(name, condition) or group)
            else:
                node = ref.removeprefix("comp-")
                order.append(node)
                waits[node] = after
                groups[node] = group

    walk(spec.get("root", {}).get("dag", {}), set(), "")
    return order, _reduce(waits), groups


def _group_label(name: str, condition: str) -> str:
    if condition:
        cleaned = condition.replace("inputs.parameter_values['pipelinechannel--", "").replace("']", "")
        return f"if {cleaned}"
    if name.startswith("for-loop"):
        return "for each tuning worker"
    return ""


def _reduce(waits: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop an edge when the task waits for it through another one already."""

    def reachable(start: str, seen: set[str]) -> set[str]:
        for before in waits.get(start, ()):
            if before not in seen:
                seen.add(before)
                reachable(before, seen)
        return seen

    reduced = {}
    for node, before in waits.items():
        indirect = set()
        for b in before:
            indirect |= reachable(b, set())
        reduced[node] = {b for b in before if b not in indirect}
    return reduced


def graph_svg(spec: dict[str, Any], steps: dict[str, StepRecord], anchor) -> str:
    order, waits, groups = pipeline_graph(spec)
    if not order:
        return ""
    level: dict[str, int] = {}

    def depth(node: str, trail: tuple = ()) -> int:
        if node not in level:
            befores = [b for b in waits.get(node, ()) if b in waits and b not in trail]
            level[node] = 1 + max((depth(b, (*trail, node)) for b in befores), default=-1)
        return level[node]

    for node in order:
        depth(node)
    rows: dict[int, list[str]] = {}
    for node in order:
        rows.setdefault(level[node], []).append(node)
    box_w, box_h, gap_x, gap_y, pad = 250, 48, 28, 30, 12
    widest = max(len(r) for r in rows.values())
    width = pad * 2 + widest * box_w + (widest - 1) * gap_x
    height = pad * 2 + len(rows) * box_h + (len(rows) - 1) * gap_y
    where: dict[str, tuple[float, float]] = {}
    for lvl in sorted(rows):
        nodes = rows[lvl]
        span = len(nodes) * box_w + (len(nodes) - 1) * gap_x
        x0 = (width - span) / 2
        for i, node in enumerate(nodes):
            where[node] = (x0 + i * (box_w + gap_x), pad + lvl * (box_h + gap_y))
    parts = [
        f'<svg class="graph" role="img" aria-label="pipeline graph" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#868e96"/></marker></defs>',
    ]
    for node in order:
        x1, y1 = where[node]
        for before in sorted(waits.get(node, ())):
            if before not in where:
                continue
            x0, y0 = where[before]
            sx, sy, ex, ey = x0 + box_w / 2, y0 + box_h, x1 + box_w / 2, y1
            mid = (sy + ey) / 2
            parts.append(f'<path d="M {sx:.0f} {sy:.0f} C {sx:.0f} {mid:.0f}, {ex:.0f} {mid:.0f}, {ex:.0f} {ey - 2:.0f}" '
                         'fill="none" stroke="#adb5bd" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for node in order:
        x, y = where[node]
        step = steps.get(node)
        status = step.status if step else "NOT RUN"
        detail = {"SUCCESS": f"{step.seconds:.1f}s" if step else "", "FAILURE": f"failed after {step.seconds:.1f}s" if step else "",
                  "RUNNING": "running", "NOT RUN": "not run"}[status]
        tip = f"{node}: {status.lower()}" + (f" ({groups[node]})" if groups.get(node) else "")
        body = (
            f'<g class="node" data-task="{esc(node)}" data-status="{status}"><title>{esc(tip)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="8" fill="{FILLS[status]}" '
            f'stroke="{COLOURS[status]}" stroke-width="2"/>'
            f'<text x="{x + 12:.0f}" y="{y + 20:.0f}" font-weight="600" font-size="14" fill="#212529">{esc(node)}</text>'
            f'<text x="{x + 12:.0f}" y="{y + 38:.0f}" font-size="12" fill="{COLOURS[status]}">{esc(detail)}'
            + (f' · {esc(groups[node])}' if groups.get(node) and status == "NOT RUN" else "")
            + "</text></g>"
        )
        parts.append(f'<a href="#{anchor(node)}">{body}</a>' if step else body)
    parts.append("</svg>")
    return "".join(parts)


def confusion_matrix_svg(matrix: dict[str, Any]) -> str:
    labels = [spec.get("displayName", str(i)) for i, spec in enumerate(matrix.get("annotationSpecs", []))]
    rows = [r.get("row", []) for r in matrix.get("rows", [])]
    if not labels or not rows:
        return ""
    n = len(labels)
    cell, left, top = 64, 90, 56
    size_w, size_h = left + n * cell + 12, top + n * cell + 34
    peak = max((max(r) for r in rows if r), default=1) or 1
    parts = [f'<svg class="confusion-matrix" role="img" aria-label="confusion matrix" '
             f'width="{size_w}" height="{size_h}" viewBox="0 0 {size_w} {size_h}" font-size="13">',
             f'<text x="{left + n * cell / 2:.0f}" y="18" text-anchor="middle" font-weight="600">predicted</text>',
             f'<text x="14" y="{top + n * cell / 2:.0f}" text-anchor="middle" font-weight="600" '
             f'transform="rotate(-90 14 {top + n * cell / 2:.0f})">actual</text>']
    for j, label in enumerate(labels):
        parts.append(f'<text x="{left + j * cell + cell / 2:.0f}" y="{top - 10}" text-anchor="middle">{esc(label)}</text>')
        parts.append(f'<text x="{left - 10}" y="{top + j * cell + cell / 2 + 5:.0f}" text-anchor="end">{esc(label)}</text>')
    for i, row in enumerate(rows):
        for j, count in enumerate(row):
            share = count / peak
            fill = f"rgba(112,72,232,{0.08 + 0.85 * share:.2f})"  # not the ROC curve's colour
            ink = "#fff" if share > 0.5 else "#212529"
            x, y = left + j * cell, top + i * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff"/>'
                         f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 5:.0f}" text-anchor="middle" fill="{ink}">{count:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def roc_svg(points: list[dict[str, Any]]) -> str:
    curve = sorted({(float(p.get("falsePositiveRate", 0.0)), float(p.get("recall", 0.0))) for p in points})
    if len(curve) < 2:
        return ""
    size, pad = 260, 40
    w, h = size + pad + 16, size + pad + 14

    def xy(fpr: float, tpr: float) -> str:
        return f"{pad + fpr * size:.1f},{10 + (1 - tpr) * size:.1f}"

    auc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False))
    ticks = "".join(
        f'<text x="{pad + t * size:.0f}" y="{size + 26}" text-anchor="middle">{t:g}</text>'
        f'<text x="{pad - 6}" y="{10 + (1 - t) * size + 4:.0f}" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1)
    )
    return (
        f'<svg class="roc-curve" role="img" aria-label="ROC curve" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}" font-size="11">'
        f'<rect x="{pad}" y="10" width="{size}" height="{size}" fill="#fff" stroke="#ced4da"/>'
        f'<line x1="{pad}" y1="{10 + size}" x2="{pad + size}" y2="10" stroke="#ced4da" stroke-dasharray="4 4"/>'
        f'<polyline points="{" ".join(xy(x, y) for x, y in curve)}" fill="none" stroke="{ROC_COLOUR}" stroke-width="3"/>'
        f"{ticks}"
        f'<text x="{pad + size / 2:.0f}" y="{size + 40}" text-anchor="middle">false positive rate</text>'
        f'<text x="{pad + size - 8}" y="{10 + size - 10}" text-anchor="end" font-size="13">AUC {auc:.3f}</text>'
        f'<text x="12" y="{10 + size / 2:.0f}" text-anchor="middle" transform="rotate(-90 12 {10 + size / 2:.0f})">'
        "true positive rate</text></svg>"
    )
