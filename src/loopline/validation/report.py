"""The validation report: GX's Data Docs of each dataset made to open offline, below a Loopline
summary; the Markdown summary."""

from __future__ import annotations

import html
import json
import re

from loopline.core import html_safety
from loopline.validation.results import ValidationReport
from loopline.validation.suite import BLOCK, EVOLVE, PASS, Suite, jsonable

_OFFLINE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#212529;font-size:14px}
.container-fluid{padding:1rem 2rem}.row{display:flex;flex-wrap:wrap}.col-12{flex:0 0 100%}
.col-md-2,.col-lg-2{flex:0 0 16%;max-width:16%}.col-md-10,.col-lg-10{flex:0 0 83%;max-width:83%}
.card{border:1px solid #dee2e6;border-radius:4px;margin-bottom:1rem}.card-header{background:#f7f7f9;padding:.5rem 1rem;
border-bottom:1px solid #dee2e6}.card-body{padding:.75rem 1rem}.table{border-collapse:collapse;width:100%;margin-bottom:1rem}
.table td,.table th{border-top:1px solid #dee2e6;padding:.35rem .5rem;vertical-align:top;text-align:left}
.table-sm td,.table-sm th{padding:.25rem .4rem}.badge{display:inline-block;padding:.15em .4em;border-radius:3px;
background:#e9ecef;font-size:85%}.text-danger{color:#dc3545}.text-success{color:#28a745}.text-muted{color:#6c757d}
.collapse{display:block}.d-none{display:none}.nav{list-style:none;padding-left:0}.nav-link{display:block;padding:.2rem .5rem}
.ge-navigation-sidebar-container{position:sticky;top:0}code{color:#e83e8c}img{max-width:100%}
.fa-check-circle::before{content:"\\2714";color:#28a745}.fa-times::before{content:"\\2718";color:#dc3545}
.fa-exclamation-triangle::before{content:"\\26A0";color:#d39e00}.fa-question-circle::before{content:"?"}
footer,.sticky .card:has(input[type=radio]){display:none}
#loopline-summary{margin:1rem 2rem;padding:1rem;border:2px solid #888;background:#fafafa}
#loopline-summary.block{border-color:#dc3545}#loopline-summary.evolve{border-color:#d39e00}
#loopline-summary table{border-collapse:collapse}#loopline-summary td,#loopline-summary th{border:1px solid #ccc;padding:3px 8px}
"""

_EXTERNAL = re.compile(
    r"<script[^>]*\bsrc\s*=\s*[\"'][^\"']*[\"'][^>]*>\s*</script>"  # every script file (CDN or relative)
    r"|<link[^>]*\bhref\s*=\s*[\"'][^\"']*[\"'][^>]*/?>"  # stylesheets and icons
    r"|<img[^>]*\bsrc\s*=\s*[\"']https?://[^\"']*[\"'][^>]*/?>",
    re.I,
)

_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)

_LINK_HREF = re.compile(r"\bhref\s*=\s*[\"'](https?://|\.\./|index\.html)[^\"']*[\"']", re.I)

_CSS_URL = re.compile(r"url\(\s*[\"']?(https?:)?//[^)]*\)", re.I)

def offline(page: str) -> str:
    """A GX Data Docs page that fetches nothing: CDN scripts/stylesheets, remote images and
    scripts (which need the CDN's jQuery and Bootstrap) removed; links out of the page dropped."""
    page = _EXTERNAL.sub("", page)
    page = _INLINE_SCRIPT.sub("", page)
    page = _CSS_URL.sub("none", page)  # GX's logo, as a CSS background
    return _LINK_HREF.sub("", page)

def _gx_body(result, prefix: str, *, with_style: bool, aliases: dict[str, str] | None = None) -> str:
    """The body of GX's Data Docs page for one validation result, with ids made unique and the
    columns GX saw under aliases (`validation_names`) under their own names."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    for r in result.results:  # GX's renderers format plain numbers only
        r.result = jsonable(dict(r.result or {}))
    page = offline(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
    start = page.find(">", page.find("<body")) + 1
    body = page[start:page.rfind("</body>")]
    style = "".join(re.findall(r"<style[^>]*>.*?</style>", page[:start], re.S)) if with_style else ""
    body = re.sub(r'\bid="', f'id="{prefix}-', body)
    body = re.sub(r'href="#', f'href="#{prefix}-', body)
    for name, alias in (aliases or {}).items():
        body = body.replace(html.escape(alias), html.escape(name))
    return style + body

def render_html(report: ValidationReport, suite: Suite) -> str:
    """Loopline's outcome summary above GX's Data Docs page of every validated dataset."""
    outcome = report.outcome
    failures = "".join(
        f"<tr><td>{html.escape(f.get('split', ''))}</td><td>{html.escape(f['column'])}</td>"
        f"<td>{html.escape(f['expectation'])}</td><td>{html.escape(str(f['severity']))}</td><td>{html.escape(f['detail'])}</td></tr>"
        for f in report.failures(with_split=True)
    )
    changes = "".join(
        f"<li>{html.escape(s.name)}: column <b>{html.escape(c.column)}</b> {html.escape(c.detail)}"
        f" ({'blocks' if c.blocking else 'evolve'})</li>"
        for s in report.splits for c in s.schema_changes
    )
    summary = " · ".join(
        f"<b>{html.escape(s.name)}</b>: {len(s.checks) - len(s.failures)}/{len(s.checks)} met ({s.rows} rows)"
        for s in report.splits
    )
    verdict = {PASS: "passed", EVOLVE: "passed, schema evolves", BLOCK: "FAILED (blocked)"}[outcome]
    parts = [
        f"<div id='loopline-summary' class='{outcome}'><h1>Data validation: {verdict}</h1>",
        f"<p>outcome <b>{outcome}</b> · skew score {report.skew_score:.3f} (threshold {report.skew_threshold:g}) · "
        f"{report.failed_critical} critical and {report.failed_warning} warning failures · {summary}</p>",
    ]
    if changes:
        parts.append(f"<h3>Schema changes</h3><ul>{changes}</ul>")
    if failures:
        parts.append("<h3>Failed expectations</h3><table><tr><th>dataset</th><th>column</th><th>expectation</th>"
                      f"<th>severity</th><th>observed</th></tr>{failures}</table>")
    suite_json = html.escape(json.dumps(suite.to_json(), indent=1, default=str))
    parts.append(f"<details><summary>Expectation suite ({len(suite.expectations)} expectations)</summary>"
                 f"<pre>{suite_json}</pre></details></div>")
    for i, split in enumerate(report.splits):
        if split.gx_result is not None:
            parts.append(f"<h2 style='margin:1rem 2rem'>Great Expectations Data Docs: {html.escape(split.name)}</h2>")
            parts.append(_gx_body(split.gx_result, f"s{i}", with_style=i == 0, aliases=split.column_aliases))
    return html_safety.with_policy(  # no script runs here, whatever the data says
        "<!doctype html><html><head><meta charset='utf-8'><title>Loopline data validation</title>"
        f"<style>{_OFFLINE_CSS}</style></head><body>{''.join(parts)}</body></html>"
    )

def summary_markdown(report: ValidationReport) -> str:
    lines = [
        f"## Data validation: {report.outcome}",
        "",
        f"{'passed' if report.passed else 'FAILED'} · skew score {report.skew_score:.3f} "
        f"(threshold {report.skew_threshold:g}) · {report.evaluated} expectations evaluated on {report.rows:,} rows · "
        f"{report.failed_critical} critical and {report.failed_warning} warning failures",
        "",
    ]
    changes = [(s.name, c) for s in report.splits for c in s.schema_changes]
    if changes:
        lines += ["### Schema changes", ""]
        lines += [f"- {html_safety.md(n)}: {html_safety.md_code(c.column)} {html_safety.md(c.detail)} "
                  f"({'blocks' if c.blocking else 'evolve'})" for n, c in changes]
        lines.append("")
    failures = report.failures(with_split=True)
    if failures:
        lines += ["| dataset | column | expectation | severity | observed |", "|---|---|---|---|---|"]
        for f in failures:
            cells = (f.get("split", ""), f["column"], f["expectation"], f["severity"], f["detail"])
            lines.append("| " + " | ".join(html_safety.md(c) for c in cells) + " |")
    else:
        lines.append("Every expectation was met.")
    return "\n".join(lines) + "\n"
