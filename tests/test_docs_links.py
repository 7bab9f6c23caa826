"""Every relative link of the README and of `docs/` reaches an existing file and, with a
`#fragment`, a heading of that file (GitHub's anchors: lower case, punctuation dropped, spaces
as hyphens). Links inside code are not links and are left out."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "containers" / "README.md",
        *sorted((ROOT / "components").glob("*/README.md"))]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str, *, inline_code: bool = False) -> str:
    """The text without fenced and indented code blocks, and without inline code unless asked."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if fenced or line.startswith("    ") and (not kept or not kept[-1].strip() or kept[-1].startswith("    ")):
            kept.append("    ")  # an indented code block (a list's continuation follows a non-blank line)
            continue
        kept.append(line if inline_code else re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading's text."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(path.read_text(), inline_code=True).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = anchor(match.group(1))
            name, n = base, 0
            while name in found:  # GitHub numbers repeated headings: name, name-1, name-2
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I)]  # http:, https:, mailto: ...


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def broken(path: Path) -> list[str]:
    problems = []
    for target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{target}: no file {_shown(resolved)}")
        elif fragment and (resolved.is_dir() or resolved.suffix != ".md" or fragment not in anchors(resolved)):
            problems.append(f"{target}: no heading #{fragment} in {_shown(resolved)}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_relative_link_resolves(path):
    assert broken(path) == []


def test_the_readme_and_docs_link_to_each_other():
    readme_links = {t.partition("#")[0] for t in relative_links(ROOT / "README.md")}
    for name in ("local-run", "cli", "clusters", "serving", "benchmarks", "development"):
        assert f"docs/{name}.md" in readme_links, name


def test_a_broken_file_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Cluster settings (kfp-kubernetes)\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#cluster-settings-kfp-kubernetes) [top](#title) [gone](missing.md)\n"
                    "[bad anchor](other.md#nowhere) `[in code](missing-too.md)`\n\n# Title\n\n"
                    "```\n[in a fence](missing-three.md)\n```\n")
    assert [p.split(":")[0] for p in broken(page)] == ["missing.md", "other.md#nowhere"]


def test_github_anchors():
    assert anchor("The gate (`thresholds`)") == "the-gate-thresholds"
    assert anchor("Checking data: `validate` and `drift`") == "checking-data-validate-and-drift"
    assert anchor("Deployment: canary, smoke test, promote or roll back") == "deployment-canary-smoke-test-promote-or-roll-back"


def test_the_readme_stays_a_five_minute_read_and_the_layer_table_has_its_markers():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150  # reference goes to docs/
    development = (ROOT / "docs" / "development.md").read_text()
    begin, end = development.index("<!-- layers:begin -->"), development.index("<!-- layers:end -->")
    assert begin < end and "| 0 | `loopline.core` |" in development[begin:end]
