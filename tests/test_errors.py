"""Exit codes and one-line errors: every usage, input and environment error ends with exit code 2
and one line `loopline: error: ...` naming the file, column, parameter or service; 1 is only for a
verdict on the data; no traceback unless --debug."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from loopline.cli.app import main
from loopline.data.demo import demo_transactions


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    good = demo_transactions(300, seed=1)
    paths = {}

    def csv(name: str, text: str) -> None:
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text(text)

    paths["good"] = folder / "good.csv"
    good.to_csv(paths["good"], index=False)
    # `amount` twice: pandas would read the second one as `amount.1`
    header = "transaction_id,amount,amount,account_age_days,tx_last_24h,distance_km,merchant_category,channel,is_fraud"
    body = good.drop(columns=["hour"]).to_csv(index=False, header=False)
    csv("repeated", f"{header}\n{body}")
    body = good.to_csv(index=False, header=False)
    csv("unnamed", "transaction_id,amount,,account_age_days,tx_last_24h,distance_km,merchant_category,channel,is_fraud\n"
        + body)
    dated = good.drop(columns=["transaction_id"]).assign(ts=pd.date_range("2026-01-01", periods=len(good), freq="h"))
    paths["dated"] = folder / "dated.parquet"
    dated.to_parquet(paths["dated"])
    paths["lists"] = folder / "lists.parquet"
    good.assign(tags=[[1, 2]] * len(good)).to_parquet(paths["lists"])
    paths["structs"] = folder / "structs.parquet"
    good.assign(where=[{"lat": 1.0, "lon": 2.0}] * len(good)).to_parquet(paths["structs"])
    paths["few"] = folder / "few.csv"
    good.head(30).to_csv(paths["few"], index=False)
    paths["renamed"] = folder / "renamed.csv"
    good.rename(columns={"hour": "hour_of_day"}).to_csv(paths["renamed"], index=False)
    paths["binary"] = folder / "binary.yaml"
    paths["binary"].write_bytes(bytes(range(256)) * 4)
    paths["a_file"] = folder / "a_file"
    paths["a_file"].write_text("not a folder")
    corrupt = folder / "corrupt-home"
    corrupt.mkdir()
    (corrupt / "mlflow.db").write_bytes(b"this is no database\n" * 20)
    paths["corrupt_home"] = corrupt
    return paths


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("loopline: error: "), err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (kind, arguments, what the line says); {name} is replaced by the file of that name
CASES = [
    ("thresholds as a JSON list", ["run", "--thresholds", "[0.8]"], ["--thresholds must be a JSON object"]),
    ("thresholds not JSON", ["run", "--thresholds", "{{roc_auc: 0.8"], ["--thresholds is not valid JSON"]),
    ("output folder is a file (compile)", ["compile", "--out", "{a_file}"], ["--out", "a_file is a file, not a folder"]),
    ("output folder is a file (validate)",
     ["validate", "--reference", "{good}", "--data", "{good}", "--report", "{a_file}"], ["--report", "is a file"]),
    ("output folder is a file (drift)",
     ["drift", "--reference", "{good}", "--current", "{good}", "--report", "{a_file}"], ["--report", "is a file"]),
    ("Parquet column of lists", ["validate", "--reference", "{lists}", "--data", "{lists}"],
     ["lists.parquet", "column 'tags' holds list values"]),
    ("Parquet column of structs", ["drift", "--reference", "{structs}", "--current", "{structs}"],
     ["structs.parquet", "column 'where' holds mapping (struct) values"]),
    ("a column name twice", ["run", "--data", "{repeated}", "--target", "is_fraud", "--ignore", "transaction_id"],
     ["repeated.csv", "column name 'amount' appears twice", "columns 2 and 3"]),
    ("a column without a name", ["run", "--data", "{unnamed}", "--target", "is_fraud"],
     ["unnamed.csv", "column 3 of the header has no name"]),
    ("a date column as a feature", ["run", "--data", "{dated}", "--target", "is_fraud"],
     ["column 'ts'", "dated.parquet", "holds dates or times", "--ignore ts"]),
    ("an id column as a feature", ["run", "--data", "{good}", "--target", "is_fraud"],
     ["column 'transaction_id'", "looks like an id", "--ignore transaction_id"]),
    ("too few rows", ["run", "--data", "{few}", "--target", "is_fraud", "--ignore", "transaction_id"],
     ["too few rows", "few.csv", "30 rows"]),
    ("a target that is no label", ["run", "--data", "{good}", "--target", "amount", "--ignore", "transaction_id"],
     ["target column 'amount'", "continuous numbers"]),
    ("--current with other columns",
     ["run", "--data", "{good}", "--target", "is_fraud", "--ignore", "transaction_id", "--current", "{renamed}"],
     ["renamed.csv does not match the training data", "lacks the training columns hour", "hour_of_day"]),
    ("serve before any run", ["serve", "--home", "{fresh_home}"], ["no local registry in", "run `loopline run` first"]),
    ("corrupt MLflow store (serve)", ["serve", "--home", "{corrupt_home}"], ["mlflow.db is not an SQLite database"]),
    ("unreachable MLflow store (serve)", ["serve", "--home", "{fresh_home}", "--tracking-uri", "http://127.0.0.1:{port}"],
     ["cannot reach the MLflow tracking server at http://127.0.0.1:", "nothing accepts connections"]),
    ("a binary --package", ["submit", "--pipeline", "training", "--package", "{binary}", "--kfp-host",
                            "http://127.0.0.1:{port}", "--dry-run"], ["binary.yaml is not a compiled KFP pipeline"]),
    ("a bad number", ["run", "--trials", "many"], ["argument --trials: invalid int value: 'many'"]),
    ("an unknown option", ["drift", "--reference", "{good}", "--curent", "{good}"], ["the following arguments are required: --current"]),
]


@pytest.mark.parametrize(("kind", "args", "needles"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_is_one_line_with_exit_code_2(kind, args, needles, files, capsys, tmp_path):
    names = {**{k: str(v) for k, v in files.items()}, "fresh_home": str(tmp_path / "fresh"), "port": str(closed_port())}
    argv = [a.format(**names) for a in args]
    if argv[0] == "run" and "--home" not in argv:
        argv += ["--home", str(tmp_path / "home")]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, *needles)
    home = tmp_path / "home"
    assert not (home / "pipeline_root").exists() and not (home / "serving").exists()  # nothing ran


def test_usage_errors_are_one_line_from_the_real_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "loopline.cli", "run", "--trials", "x"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "loopline: error: argument --trials: invalid int value: 'x' (see `loopline run --help`)"]


def test_a_corrupt_store_stops_the_run_before_training(files, capsys, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlflow.db").write_bytes((files["corrupt_home"] / "mlflow.db").read_bytes())
    code, _, err = cli(capsys, "run", "--home", home, "--data", files["good"], "--target", "is_fraud", "--ignore",
                       "transaction_id")
    line = assert_one_line_error(code, err)
    assert line == f"loopline: error: the MLflow store sqlite:///{home / 'mlflow.db'} is not an SQLite database (corrupt or another kind of file)"
    assert not (home / "pipeline_root").exists()


def test_debug_shows_the_traceback_and_the_same_line(files, capsys):
    code, _, err = cli(capsys, "serve", "--home", files["corrupt_home"], "--debug")
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("loopline: error: the MLflow store sqlite:///")


def test_an_unexpected_error_is_one_line_that_points_to_debug(capsys, monkeypatch):
    from loopline.cli import app as cli_module

    def broken(args):
        raise KeyError("surprise")

    parser = cli_module.build_parser()
    monkeypatch.setattr(cli_module, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["compile"].set_defaults(func=broken)
    code, _, err = cli(capsys, "compile")
    assert code == 2
    assert err.strip().splitlines() == ["loopline: error: KeyError: 'surprise' (run with --debug for the traceback)"]


def test_serve_on_a_busy_port_is_one_line(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = cli(capsys, "serve", "--home", tmp_path, "--port", port)
    assert_one_line_error(code, err, f"port {port} on 127.0.0.1 is in use")
    assert out == ""


def test_validate_a_parquet_file_with_dates_against_itself_passes(files, capsys):
    code, out, err = cli(capsys, "validate", "--reference", files["dated"], "--data", files["dated"])
    assert code == 0, err
    assert out.startswith("validation: pass (passed)")


def test_a_data_verdict_is_exit_code_1_not_2(files, capsys, tmp_path):
    shifted = tmp_path / "shifted.csv"
    demo_transactions(300, shift=1.0, seed=2).to_csv(shifted, index=False)
    code, out, _ = cli(capsys, "drift", "--reference", files["good"], "--current", shifted, "--ignore", "transaction_id",
                       "is_fraud")
    assert code == 1 and out.startswith("drift: DRIFTED")
