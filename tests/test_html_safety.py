"""Every HTML page Loopline writes treats what came from outside as text: hostile column names
and values in the validation, drift and tuning reports, the gate's Markdown and the run page run
no script in headless Chromium, and the reports still draw their charts."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.core import html_safety
from loopline.local import records as localruns
from loopline.local import runpage
from tests import browser

MARK = "data-pwned"


def hostile(port: int) -> list[str]:
    """What an attacker puts into a column name or a category value: each would mark the page
    and call the listener if it ran."""
    act = f"document.documentElement.setAttribute('{MARK}','1');fetch('http://127.0.0.1:{port}/ran')"
    return [
        f"<script>{act}</script>",
        f"</script><img src=x onerror=\"{act}\">",
        f"<svg onload=\"{act}\"></svg>",
        f"<img src='http://127.0.0.1:{port}/fetched'>",
    ]


class Listener:
    """An HTTP server on loopback that records every request (a script or image that ran)."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                hits.append(self.path)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def listener():
    server = Listener()
    yield server
    server.close()


def rendered(page: Path) -> str:
    """The DOM after Chromium loaded the page and ran what it allows (10 s of page time)."""
    result = browser._run(["--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()])
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def assert_nothing_ran(dom: str, listener: Listener) -> None:
    time.sleep(0.5)  # a request the page made would have arrived by now
    assert f'{MARK}="1"' not in dom
    assert listener.hits == []


def permissive_markdown(text: str) -> str:
    """Markdown rendered as a viewer that lets HTML through would (KFP's may): what Loopline
    writes must hold no markup of its own."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def frames(port: int, n: int = 300, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    bad = hostile(port)
    rng = np.random.default_rng(seed)
    return pd.DataFrame({bad[0]: rng.normal(shift, 1, n), bad[1]: rng.normal(0, 1, n),
                         "kind": rng.choice(bad + ["plain"], n)})


def test_script_json_cannot_close_its_script():
    text = html_safety.script_json({"</script><b>": "a & b"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"</script><b>": "a & b"}


def test_the_policy_allows_only_the_scripts_written():
    page = html_safety.with_policy("<html><head></head><body><script>ok()</script></body></html>", scripts=True)
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', page)[1]
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy
    assert policy.count("'sha256-") == 1 and "unsafe-inline' " not in policy.split("style-src")[0]
    assert "script-src 'none'" in html_safety.with_policy("<html><head></head></html>")


def test_the_harness_sees_a_script_that_runs(tmp_path, listener):
    """Without Loopline's escaping and policy the same payload runs: the check below can fail."""
    browser.chromium()
    page = tmp_path / "unsafe.html"
    page.write_text(f"<html><body>{hostile(listener.port)[0]}</body></html>")
    dom = rendered(page)
    time.sleep(0.5)
    assert f'{MARK}="1"' in dom and "/ran" in listener.hits


def test_the_drift_report_runs_no_script_and_still_draws(tmp_path, listener):
    from loopline import drift

    browser.chromium()
    page = tmp_path / "drift.html"
    reference, current = frames(listener.port), frames(listener.port, shift=1.5, seed=1)
    result = drift.detect(reference, current, settings=drift.DriftSettings(), report_path=page)
    assert result.features  # every hostile column was judged
    dom = rendered(page)
    assert_nothing_ran(dom, listener)
    assert "main-svg" in dom  # Evidently's charts were drawn under the policy
    assert "Loopline drift verdict" in dom
    markdown = permissive_markdown(drift.summary_markdown(result))
    assert "<script" not in markdown and "<img" not in markdown and "&lt;script&gt;" in markdown


def test_the_validation_report_runs_no_script(tmp_path, listener):
    from loopline.validation.report import summary_markdown
    from loopline.validation.validate import ValidationSettings, validate_splits

    browser.chromium()
    train = frames(listener.port)
    changed = frames(listener.port, seed=2).assign(**{hostile(listener.port)[2]: 1.0})
    page = tmp_path / "validation.html"
    report = validate_splits({"train": train, "holdout": changed}, settings=ValidationSettings(), report_path=page,
                             fail_on_error=False)
    dom = rendered(page)
    assert_nothing_ran(dom, listener)
    assert "Data validation" in dom
    rendered_markdown = permissive_markdown(summary_markdown(report))
    assert "<svg" not in rendered_markdown and "<img" not in rendered_markdown and "&lt;svg onload" in rendered_markdown


def test_the_tuning_report_runs_no_script_and_still_draws(tmp_path, listener):
    import optuna

    from loopline.tuning.report import report_html
    from loopline.tuning.study import TuningSettings

    browser.chromium()
    bad = hostile(listener.port)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float(bad[1], 0, 1) + t.suggest_float("x", 0, 1), n_trials=4)
    page = report_html(study, settings=TuningSettings(), study_name=bad[0], best_curves={bad[2]: [0.1, 0.2]},
                       final_curves={}, path=tmp_path / "tuning.html")
    dom = rendered(page)
    assert_nothing_ran(dom, listener)
    assert "main-svg" in dom  # plotly drew its charts under the policy


def test_the_run_page_escapes_everything_and_sandboxes_the_reports(tmp_path, listener):
    browser.chromium()
    bad = hostile(listener.port)
    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "report.html").write_text(f"<html><body>{bad[0]}</body></html>")
    (tmp_path / "ours.html").write_text(html_safety.with_policy("<html><head></head><body><p>ok</p></body></html>"))
    (tmp_path / "summary.md").write_text(f"## gate\n\n| slice | rows |\n|---|---|\n| {bad[1]} | 3 |\n{bad[2]}\n")
    output = tmp_path / "executor_output.json"
    output.write_text(json.dumps({"artifacts": {
        "report": {"artifacts": [{"uri": str(tmp_path / "report.html"), "metadata": {bad[3]: bad[0]}}]},
        "ours": {"artifacts": [{"uri": str(tmp_path / "ours.html"), "metadata": {}}]},
        "summary": {"artifacts": [{"uri": str(tmp_path / "summary.md"), "metadata": {}}]}},
        "parameterValues": {"Output": bad[1]}}))
    step = localruns.StepRecord(pipeline="loopline-training", task="evaluate-model", started=0.0, ended=1.0,
                                status="FAILURE", cause=bad[0], output_file=str(output),
                                inputs={"parameters": {bad[1]: bad[2]}, "artifacts": {}},
                                output_types={"report": "system.HTML", "ours": "system.HTML",
                                              "summary": "system.Markdown"})
    record = localruns.RunRecord(id="r1", folder=str(folder), started=0.0, ended=1.0, status="FAILURE",
                                 error=bad[1], command=f"loopline run --data '{bad[0]}'",
                                 pipelines=[localruns.PipelineRecord(name="loopline-training", started=0.0)],
                                 steps=[step], summary={"aliases": {bad[0]: "1"}, "endpoint": bad[1]})
    page = runpage.write(record)
    text = page.read_text()
    assert 'sandbox=""' in text and "allow-same-origin" not in text  # not a report of Loopline's: no script
    assert text.count(f'sandbox="{html_safety.SANDBOX}"') == 1  # Loopline's own report keeps its charts
    assert "Content-Security-Policy" in text and "script-src 'none'" in text
    dom = rendered(page)
    assert_nothing_ran(dom, listener)
    assert "&lt;script&gt;" in dom  # shown as the text it is


def test_markdown_cells_from_outside_are_text():
    assert html_safety.md("<b>|`x`") == "&lt;b&gt;\\|&#96;x&#96;"
