"""Every HTML page Loopline writes treats what came from outside (column names, category values,
file names, messages) as text, never as markup or script.

- `text(value)`: HTML-escaped, for element content and attribute values.
- `script_json(value)`: JSON to embed inside `<script>`: `<`, `>` and `&` as `\\u003c` ...,
  so no value can close the script block (`</script>`) or open a comment.
- `escape_script_data(page, ...)`: the same, applied to the JSON data lines a library
  (Evidently) already wrote into its page, before anything of the page is trusted.
- `with_policy(page)`: a restrictive Content-Security-Policy as the first thing in `<head>`:
  nothing from the network, no plugins, no forms, no inline event handlers, and scripts only
  those present when the page was written (by their SHA-256), so markup slipped in later, or a
  handler such as `onerror=`, never runs.
- `SANDBOX`: the `sandbox` of the iframe that shows a report of Loopline's (one that carries the
  policy above) inside the run page: scripts (the reports draw their charts with them) in an
  opaque origin, which reaches neither the page nor its files; no forms, pop-ups, top navigation
  or same-origin access. Any other HTML is shown with `sandbox=""`: no script at all.

Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from typing import Any

SANDBOX = "allow-scripts"  # for a report that carries Loopline's policy; any other report: sandbox=""
POLICY_META = '<meta http-equiv="Content-Security-Policy"'
_SCRIPT = re.compile(r"<script\b(?P<attrs>[^>]*)>(?P<body>.*?)</script\s*>", re.I | re.S)
# `<head>` and the charset declaration right after it (which stays in the first 1024 bytes)
_HEAD = re.compile(r"<head\b[^>]*>(\s*<meta\s+charset\s*=\s*[\"']?[\w-]+[\"']?\s*/?>)?", re.I)
_HTML = re.compile(r"<html\b[^>]*>", re.I)
_JS_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def text(value: Any) -> str:
    """`value` as HTML text (content or a quoted attribute value)."""
    return html.escape(str(value), quote=True)


def js_escape(source: str) -> str:
    """JSON or JavaScript string literals with `<`, `>`, `&` and line separators as escapes (the
    same value to JavaScript, inert to the HTML parser)."""
    return re.sub("[<>&\u2028\u2029]", lambda m: _JS_ESCAPES[m[0]], source)


def script_json(value: Any, **dumps: Any) -> str:
    """`value` as JSON safe inside `<script>`."""
    return js_escape(json.dumps(value, **dumps))


def escape_script_data(page: str, start: str, lines: int) -> str:
    """Escape the JSON that a library embedded in its page: from the first `start`, each of the
    next `lines` lines holds `var name = <JSON>;` (JSON has no raw line breaks). A value holding
    `</script>` would end the block early, so the lines are found by position, never by looking for
    the block's end. Their `<`, `>`, `&` become escapes; the page is unchanged otherwise."""
    at = page.find(start)
    if at < 0:
        return page
    head, rest = page[:at + len(start)], page[at + len(start):].split("\n")
    for i in range(min(lines, len(rest))):
        name, sep, value = rest[i].partition(" = ")
        if sep:
            rest[i] = name + sep + js_escape(value)
    return head + "\n".join(rest)


def inline_scripts(page: str) -> list[str]:
    """The bodies of the page's inline scripts (those without `src`)."""
    return [m["body"] for m in _SCRIPT.finditer(page) if "src=" not in m["attrs"].lower()]


def policy(scripts: list[str] = (), *, frames: bool = False) -> str:
    """The Content-Security-Policy: nothing from the network; only the given inline scripts."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return "; ".join([
        "default-src 'none'",
        f"script-src {hashes}" if hashes else "script-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data: blob:",
        "font-src data:",
        "connect-src 'none'",
        "frame-src 'self'" if frames else "frame-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ])


def has_policy(page: str) -> bool:
    """Whether the page starts its `<head>` with Loopline's policy (it was written by Loopline)."""
    head = _HEAD.search(page)
    return head is not None and page.startswith(POLICY_META, head.end())


def with_policy(page: str, *, scripts: bool = False, frames: bool = False) -> str:
    """`page` with its Content-Security-Policy first in `<head>`. With `scripts`, the inline
    scripts the page holds now may run (their hashes); without, none."""
    content = policy(inline_scripts(page) if scripts else [], frames=frames)
    meta = f'{POLICY_META} content="{html.escape(content, quote=False)}">'
    if (head := _HEAD.search(page)) is not None:
        return page[:head.end()] + meta + page[head.end():]
    if (root := _HTML.search(page)) is not None:
        return page[:root.end()] + f"<head>{meta}</head>" + page[root.end():]
    return f"<head>{meta}</head>" + page


def md(value: Any) -> str:
    """`value` as literal text in Markdown (a table cell or a line) that KFP's viewer and the run
    page render: no HTML, no table cell break."""
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("`", "&#96;")


def md_code(value: Any) -> str:
    """`value` as a Markdown code span: shown as the text it is (no HTML inside a code span)."""
    text_ = str(value).replace("`", "'").replace("\n", " ")
    return f"`{text_}`"
