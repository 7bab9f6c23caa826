"""Messages that name what is wrong: a host that does not resolve, an address not on this machine,
a damaged or foreign mlflow.db, a binary parameters file, a negative sample size, an absurd row
count, thresholds nested too deep, ignoring every feature: each one line, exit code 2."""

from __future__ import annotations

import sqlite3

import pytest

from loopline.cli.app import main
from loopline.data.demo import demo_transactions

from .conftest import ROOT


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messages")
    data = demo_transactions(300, seed=3)
    data.to_csv(folder / "data.csv", index=False)
    (folder / "params.bin").write_bytes(bytes(range(128, 256)) * 4)
    damaged = folder / "damaged"
    damaged.mkdir()
    (damaged / "mlflow.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)
    foreign = folder / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "mlflow.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    truncated = folder / "truncated"
    truncated.mkdir()
    whole = folder / "whole.db"
    with sqlite3.connect(whole) as db:  # an MLflow-like store with enough pages that a cut shows
        db.execute("CREATE TABLE experiments (id INTEGER, name TEXT)")
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        db.executemany("INSERT INTO experiments VALUES (?, ?)", [(i, "x" * 200) for i in range(3000)])
    (truncated / "mlflow.db").write_bytes(whole.read_bytes()[:40_000])
    return folder, list(data.columns)


def _cases(folder, columns):
    features = [c for c in columns if c != "is_fraud"]
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    return [
        (["serve", "--home", str(folder), "--tracking-uri", "http://registry.invalid:5000"],
         "cannot reach the MLflow tracking server at http://registry.invalid:5000: the host name 'registry.invalid' "
         "does not resolve"),
        (["serve", "--home", str(folder), "--host", "192.0.2.77"],
         "host 192.0.2.77 is not an address of this machine (Cannot assign requested address)"),
        (["serve", "--home", str(folder), "--host", "listen.invalid"], "host 'listen.invalid' to listen on does not resolve"),
        (["serve", "--home", str(folder / "damaged")], "mlflow.db is damaged (file is not a database)"),
        (["serve", "--home", str(folder / "truncated")], "mlflow.db is damaged"),
        (["serve", "--home", str(folder / "foreign")], "mlflow.db is an SQLite database of something else (tables: customers)"),
        (["submit", "--pipeline", "training", "--compiled", str(ROOT / "compiled"), "--kfp-host", "http://127.0.0.1:9",
          "--params-file", str(folder / "params.bin"), "--dry-run"],
         f"parameters file {folder / 'params.bin'} is not a text file (byte 0x80 at offset 0)"),
        (["drift", "--reference", str(folder / "data.csv"), "--current", str(folder / "data.csv"), "--report-sample", "-5"],
         "report_sample_rows must be 0 (all rows) or positive, got -5"),
        (["run", "--home", str(folder / "h"), "--rows", "100000000000"],
         "n_rows must be at most 10,000,000 for the demo data, got 100,000,000,000"),
        (["run", "--home", str(folder / "h"), "--thresholds", deep], "--thresholds is nested too deeply"),
        (["drift", "--reference", str(folder / "data.csv"), "--current", str(folder / "data.csv"), "--ignore", *columns],
         "no feature column is left to compare"),
        (["run", "--home", str(folder / "h"), "--data", str(folder / "data.csv"), "--target", "is_fraud",
          "--ignore", *features], "no feature columns left in"),
    ]


CASE_IDS = ["unresolvable registry host", "address not on this machine", "unresolvable listen host", "damaged mlflow.db",
            "truncated mlflow.db", "foreign mlflow.db", "binary parameters file", "negative sample size",
            "absurd row count", "thresholds nested too deep", "drift ignoring every feature",
            "run ignoring every feature"]


@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_each_message_names_what_is_wrong(case, inputs, capsys):
    folder, columns = inputs
    args, message = _cases(folder, columns)[case]
    code = main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("loopline: error:")]
    assert code == 2 and len(err) == 1, err
    assert message in err[0] and "Traceback" not in err[0] and "(run with --debug" not in err[0], err
