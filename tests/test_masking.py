"""One secret filter: planted passwords (in the tracking URI, in tuning_storage_url, a token in a
file) appear in no file a run leaves and in no line a command prints."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopline.cli.app import main
from loopline.core import masking

from .conftest import LENIENT_GATES, ROOT

TRACKING_PASSWORD = "Tr4ckingPw-9f2c"
TUNING_PASSWORD = "Tun1ngPw-77ab"
TOKEN = "kfp-token-0c1d2e3f4a5b"
SECRETS = (TRACKING_PASSWORD, TUNING_PASSWORD, TOKEN)


def test_mask_hides_url_passwords_pairs_tokens_and_registered_values():
    text = masking.mask(f"http://alice:{TRACKING_PASSWORD}@mlflow:5000 password={TUNING_PASSWORD} "
                        f"Authorization: Bearer {TOKEN}")
    assert not any(s in text for s in SECRETS), text
    assert "http://***@mlflow:5000" in text
    # once seen in a URL, the password is masked wherever it appears
    assert masking.mask(f"it was {TRACKING_PASSWORD}") == "it was ***"
    masking.register("sk-registered-1234")
    assert masking.mask("key sk-registered-1234 here") == "key *** here"


def test_secret_environment_values_are_masked(monkeypatch):
    monkeypatch.setenv("LOOPLINE_TUNING_STORAGE_PASSWORD", "env-secret-5566")
    assert masking.mask("connect with env-secret-5566") == "connect with ***"


def test_every_logged_line_is_masked():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    masking.install(handler)
    log = logging.getLogger("loopline.test-masking")
    log.addHandler(handler)
    try:
        log.warning("cannot reach %s", f"postgresql://bob:{TUNING_PASSWORD}@db/optuna")
        try:
            raise RuntimeError(f"token={TOKEN}")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert not any(s in stream.getvalue() for s in SECRETS), stream.getvalue()
    assert "postgresql://***@db/optuna" in stream.getvalue()


def test_dry_run_prints_no_password(capsys, kfp_api, tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    code = main(["submit", "--pipeline", "training", "--compiled", str(ROOT / "compiled"), "--kfp-host", kfp_api.url,
                 "--kfp-token-file", str(token), "--dry-run",
                 "--param", "data_uri=s3://data/train.csv", "--param", "target=is_fraud",
                 "--param", f"tracking_uri=http://alice:{TRACKING_PASSWORD}@mlflow.example:5000",
                 "--param", f"tuning_storage_url=postgresql+psycopg://bob:{TUNING_PASSWORD}@db:5432/optuna"])
    out = capsys.readouterr()
    printed = out.out + out.err
    assert code == 0 and out.out.startswith("checked: ") and "http://***@mlflow.example:5000" in out.out, printed
    assert not any(s in printed for s in SECRETS), printed


def test_an_error_line_prints_no_password(capsys, tmp_path):
    code = main(["serve", "--home", str(tmp_path), "--tracking-uri", f"http://alice:{TRACKING_PASSWORD}@127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("loopline: error: ") and TRACKING_PASSWORD not in err, err


def _files_holding(root: Path, secrets: tuple[str, ...]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)} holds {s}" for s in secrets if s.encode() in data]
    return found


@pytest.mark.slow
def test_a_run_leaves_no_planted_password_in_any_file_or_line(mlflow_server, tmp_path):
    """A whole `loopline run` against an MLflow server whose URI carries a password: every file
    under the home (record, page, log, reports, manifests, pipeline root, registry cache) and the
    server's store, and every line printed, are free of it."""
    home = tmp_path / "home"
    uri = mlflow_server.uri.replace("http://", f"http://alice:{TRACKING_PASSWORD}@")
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "run", "--home", str(home), "--rows", "1200", "--trials", "1",
         "--max-epochs", "2", "--model-name", "masked-run", "--tracking-uri", uri,
         "--thresholds", json.dumps(LENIENT_GATES)],
        cwd=tmp_path, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "LOOPLINE_TUNING_STORAGE_PASSWORD": TUNING_PASSWORD},
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    printed = result.stdout + result.stderr
    assert TRACKING_PASSWORD not in printed, [line for line in printed.splitlines() if TRACKING_PASSWORD in line]
    assert (home / "runs").is_dir() and list(home.rglob("index.html"))
    assert _files_holding(tmp_path, (TRACKING_PASSWORD, TUNING_PASSWORD)) == []
    assert _files_holding(mlflow_server.root, (TRACKING_PASSWORD,)) == []
