"""Data the way production keeps it: a Hive-partitioned Parquet dataset in a local folder and on the
S3 stand-in, a glob, a partition filter that leaves the other partitions unread, and a real
PostgreSQL table or query; their lineage; and every bad source as one line before any training."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.core.errors import DataError
from loopline.data import sources
from loopline.data import tables as data_lib
from loopline.data.demo import demo_transactions

from .conftest import art, s3_standin_env

DAYS = ("2026-10-01", "2026-11-01", "2026-11-15", "2026-12-01")
IGNORE = ["transaction_id", "dt"]
BUCKET = "loopline-lake"


def write_partitioned(folder: Path, frame: pd.DataFrame, days=DAYS) -> dict[str, int]:
    """`frame` as dt=<day>/part-000N.parquet files (two parts per day); rows per day."""
    rows = {}
    for index, chunk in enumerate(_chunks(frame, len(days))):
        day = days[index]
        for part, half in enumerate(_chunks(chunk, 2)):
            (folder / f"dt={day}").mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(half, preserve_index=False), folder / f"dt={day}" / f"part-{part:04d}.parquet")
        rows[day] = len(chunk)
    (folder / "_SUCCESS").write_text("")
    return rows


def _chunks(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    size = -(-len(frame) // n)
    return [frame.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(frame), size)]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """2,000 demo rows as a Hive-partitioned folder of eight Parquet files."""
    frame = demo_transactions(2000, seed=7)
    folder = tmp_path_factory.mktemp("lake") / "transactions"
    return folder, frame, write_partitioned(folder, frame)


@pytest.fixture(scope="module")
def s3_lake(lake, tmp_path_factory):
    """The same dataset under s3://loopline-lake/transactions/ on the S3 stand-in."""
    import boto3

    folder, frame, rows = lake
    with s3_standin_env(tmp_path_factory.mktemp("s3"), BUCKET) as server:
        client = boto3.client("s3")
        for path in sorted(folder.rglob("*.parquet")):
            client.upload_file(str(path), BUCKET, f"transactions/{path.relative_to(folder)}")
        yield server, f"s3://{BUCKET}/transactions/", frame, rows


def _split(uri: str, tmp_path: Path, **settings):
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "validation", "holdout")}
    result = data_lib.load_and_split(
        uri, target="is_fraud", settings=data_lib.SplitSettings(ignore_columns=IGNORE, **settings),
        train_path=paths["train"], validation_path=paths["validation"], holdout_path=paths["holdout"])
    return result, paths


def test_a_partitioned_folder_is_one_dataset_with_its_keys_as_columns_and_its_files_in_the_lineage(lake, tmp_path):
    folder, frame, rows = lake
    raw, lineage = data_lib.read_dataset(str(folder))
    assert len(raw) == len(frame) and sorted(raw["dt"].unique()) == list(DAYS)
    assert raw.sort_values("transaction_id")["amount"].tolist() == frame.sort_values("transaction_id")["amount"].tolist()
    parts = sorted(folder.rglob("*.parquet"))
    assert lineage["kind"] == "parquet" and lineage["file_count"] == len(parts) == 8  # _SUCCESS is no part
    assert {e["path"]: e["size"] for e in lineage["files"]} == {
        str(p.relative_to(folder)): p.stat().st_size for p in parts}
    result, paths = _split(str(folder), tmp_path)
    assert sum(result.rows.values()) == len(frame)
    assert result.spec.source_sha256 == lineage["sha256"] and result.spec.source_lineage == lineage
    _, spec = data_lib.read_split(paths["train"])
    assert spec.source_lineage["files"] == lineage["files"]  # every split carries it


def test_the_digest_follows_the_content(lake, tmp_path):
    folder, frame, _ = lake
    copy = tmp_path / "copy"
    write_partitioned(copy, frame)
    assert data_lib.read_dataset(str(copy))[1]["sha256"] == data_lib.read_dataset(str(folder))[1]["sha256"]
    changed = frame.copy()
    changed.loc[1999, "amount"] += 1.0  # one value in the last partition
    other = tmp_path / "other"
    write_partitioned(other, changed)
    assert data_lib.read_dataset(str(other))[1]["sha256"] != data_lib.read_dataset(str(folder))[1]["sha256"]


def test_a_partition_filter_selects_its_rows_and_never_opens_the_other_partitions(lake, tmp_path):
    folder, frame, rows = lake
    wanted = [d for d in DAYS if d >= "2026-11-01"]
    # a copy whose excluded partition is not Parquet at all: reading it would fail
    copy = tmp_path / "lake"
    write_partitioned(copy, frame)
    for part in (copy / "dt=2026-10-01").glob("*.parquet"):
        part.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read"):
        data_lib.read_table(str(copy))
    raw, lineage = data_lib.read_dataset(str(copy), "dt >= 2026-11-01")
    assert len(raw) == sum(rows[d] for d in wanted) and sorted(raw["dt"].unique()) == wanted
    assert lineage["filter"] == "dt >= 2026-11-01" and lineage["file_count"] == 2 * len(wanted)
    assert all(not e["path"].startswith("dt=2026-10-01") for e in lineage["files"])
    # a filter on a column of the files too, joined by 'and'
    both = data_lib.read_table(str(folder), "dt = '2026-12-01' and channel = online")
    assert len(both) == int((frame.iloc[-rows["2026-12-01"]:]["channel"] == "online").sum()) > 0
    result, _ = _split(str(copy), tmp_path, partition_filter="dt >= 2026-11-01")
    assert sum(result.rows.values()) == len(raw)
    assert data_lib.read_dataset(str(folder), "dt >= 2026-11-01")[1]["sha256"] != data_lib.read_dataset(str(folder))[1]["sha256"]


def test_a_glob_reads_the_files_it_matches(lake):
    folder, frame, rows = lake
    raw, lineage = data_lib.read_dataset(f"{folder}/dt=2026-11-*/part-0000.parquet")
    assert sorted(raw["dt"].unique()) == ["2026-11-01", "2026-11-15"] and lineage["file_count"] == 2
    assert len(raw) == sum(-(-rows[d] // 2) for d in ("2026-11-01", "2026-11-15"))


def test_a_partitioned_prefix_on_s3_with_etags_through_load_data(s3_lake, tmp_path):
    from kfp import dsl

    from loopline import components

    _, uri, frame, rows = s3_lake
    outs = {n: art(dsl.Dataset, tmp_path, n) for n in ("train", "validation", "holdout")}
    components.load_data.python_func(
        data_uri=uri, target="is_fraud", ignore_columns=IGNORE, feature_kinds={}, validation_fraction=0.15,
        holdout_fraction=0.15, seed=42, partition_filter="dt >= 2026-11-01", **outs)
    _, spec = data_lib.read_split(outs["train"].path)
    assert sum(o.metadata["rows"] for o in outs.values()) == len(frame) - rows["2026-10-01"]
    lineage = spec.source_lineage
    assert lineage["base"] == f"s3://{BUCKET}/transactions" and lineage["file_count"] == 6
    import boto3

    client = boto3.client("s3")
    for entry in lineage["files"]:
        head = client.head_object(Bucket=BUCKET, Key=f"transactions/{entry['path']}")
        assert entry["etag"] == head["ETag"].strip('"') and entry["size"] == head["ContentLength"]
    assert outs["train"].metadata["source_sha256"] == lineage["sha256"]


def test_the_drift_check_reads_partitioned_windows_locally_and_on_s3(lake, s3_lake, tmp_path):
    from kfp import dsl

    from loopline import components

    folder, _, _ = lake
    _, uri, _, _ = s3_lake
    shifted = tmp_path / "shifted"
    write_partitioned(shifted, demo_transactions(2000, shift=1.0, seed=8), days=("2026-12-02", "2026-12-03"))
    verdicts = {}
    for name, current in (("same", uri), ("shifted", str(shifted))):
        outs = {k: art(cls, tmp_path / name, k) for k, cls in
                (("report", dsl.HTML), ("metrics", dsl.Metrics), ("summary", dsl.Markdown), ("table", dsl.Artifact))}
        verdicts[name] = components.detect_drift.python_func(
            reference_data_uri=str(folder), current_data_uri=current, target="is_fraud", ignore_columns=IGNORE,
            feature_kinds={}, drift_share=0.5, **outs)
        assert outs["table"].metadata["current_uri"] == current
    assert verdicts == {"same": False, "shifted": True}


def test_a_partitioned_prefix_on_gs_through_gcsfs_under_a_filter(lake, monkeypatch):
    import gcsfs

    from .standins.gcs_api import GcsApiStandIn

    folder, frame, rows = lake
    with GcsApiStandIn(buckets=("loopline-gcs",)) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        gcsfs.GCSFileSystem.clear_instance_cache()
        for path in sorted(folder.rglob("*.parquet")):
            server.put("loopline-gcs", f"lake/{path.relative_to(folder)}", path.read_bytes())
        raw, lineage = data_lib.read_dataset("gs://loopline-gcs/lake", "dt = 2026-12-01")
        opened = {r.path for r in server.requests if r.method == "GET" and r.query.get("alt") == "media"}
    gcsfs.GCSFileSystem.clear_instance_cache()
    assert len(raw) == rows["2026-12-01"] and set(raw["dt"]) == {"2026-12-01"}
    assert lineage["base"] == "gs://loopline-gcs/lake" and lineage["file_count"] == 2
    assert opened and all("2026-12-01" in unquote(p) for p in opened)  # no other partition was downloaded


def test_validate_data_takes_its_reference_from_a_partitioned_folder(lake, tmp_path):
    from kfp import dsl

    from loopline import components

    folder, _, _ = lake
    splits = {n: art(dsl.Dataset, tmp_path, n) for n in ("train", "validation", "holdout")}
    components.load_data.python_func(data_uri=f"{folder}/dt=2026-1[12]-*/*.parquet", target="is_fraud",
                                     ignore_columns=IGNORE, feature_kinds={}, validation_fraction=0.15,
                                     holdout_fraction=0.15, seed=42, **splits)
    outs = {k: art(cls, tmp_path, k) for k, cls in (("report", dsl.HTML), ("metrics", dsl.Metrics),
                                                    ("summary", dsl.Markdown), ("result", dsl.Artifact))}
    passed = components.validate_data.python_func(**splits, **outs, fail_on_error=False,
                                                  reference_data_uri=str(folder))
    assert passed is True and outs["metrics"].metadata["failed_critical"] == 0
    assert outs["metrics"].metadata["rows"] == 1500  # three of the four partitions went into the splits


# ---------------------------------------------------------------------------------------------
# Bad Parquet sources: one line each, before anything is split


def test_a_prefix_or_glob_that_matches_no_files_is_one_line(lake, s3_lake, tmp_path):
    (tmp_path / "empty" / "dt=2026-12-01").mkdir(parents=True)
    (tmp_path / "empty" / "dt=2026-12-01" / "notes.txt").write_text("no parquet here")
    for uri in (str(tmp_path / "empty"), f"s3://{BUCKET}/nothing-here/", f"{lake[0]}/dt=2027-*/*.parquet"):
        with pytest.raises(DataError, match=r"^no Parquet files match .*") as caught:
            _split(uri, tmp_path)
        assert uri in str(caught.value) and "\n" not in str(caught.value)
    assert not list(tmp_path.glob("*.parquet"))  # no split written


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(amount=f["amount"].astype(str)), "column 'amount' is string there, double in"),
    (lambda f: f.drop(columns=["channel"]), "it lacks column 'channel'"),
    (lambda f: f.assign(extra=1), "it has column 'extra' that"),
])
def test_parts_with_different_schemas_name_the_first_file_that_differs_and_the_column(tmp_path, change, message):
    frame = demo_transactions(800, seed=3)
    folder = tmp_path / "lake"
    write_partitioned(folder, frame)
    odd = folder / "dt=2026-11-15" / "part-0001.parquet"
    pq.write_table(pa.Table.from_pandas(change(pd.read_parquet(odd)), preserve_index=False), odd)
    with pytest.raises(DataError) as caught:
        _split(str(folder), tmp_path)
    text = str(caught.value)
    assert text.startswith("dt=2026-11-15/part-0001.parquet differs from dt=2026-10-01/part-0000.parquet")
    assert message in text and "\n" not in text
    assert not (tmp_path / "train.parquet").exists()


def test_parts_whose_columns_come_in_another_order_or_as_large_strings_are_one_schema(tmp_path):
    frame = demo_transactions(800, seed=3)
    folder = tmp_path / "lake"
    write_partitioned(folder, frame)
    odd = folder / "dt=2026-12-01" / "part-0000.parquet"
    table = pq.read_table(odd)
    reordered = table.select(list(reversed(table.schema.names)))
    pq.write_table(reordered.cast(pa.schema([f.with_type(pa.large_string()) if f.type == pa.string() else f
                                             for f in reordered.schema])), odd)
    raw = data_lib.read_table(str(folder))
    assert list(raw.columns) == [*frame.columns, "dt"] and len(raw) == len(frame)
    assert sorted(raw["merchant_category"].dropna()) == sorted(frame["merchant_category"].dropna())


@pytest.mark.parametrize("text, message", [
    ("region = eu", r"partition_filter: column 'region' not found in .* \(columns: .*dt\)"),
    ("dt >> 2026", r"partition_filter: cannot read 'dt >> 2026'"),
])
def test_a_partition_filter_on_a_column_that_does_not_exist_or_unreadable_is_one_line(lake, tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        _split(str(lake[0]), tmp_path, partition_filter=text)
    assert not (tmp_path / "train.parquet").exists()


def test_the_filter_syntax_is_checked_with_the_other_parameters():
    from loopline.ops import domains

    domains.check({"partition_filter": "dt >= 2026-11-01"})
    with pytest.raises(DataError, match="partition_filter: cannot read 'dt between 1'"):
        domains.check({"partition_filter": "dt between 1"})


def test_a_filter_on_a_csv_file_is_refused(demo_csv):
    with pytest.raises(DataError, match="partition_filter applies to Parquet datasets and SQL sources"):
        data_lib.read_table(str(demo_csv), "dt >= 1")


# ---------------------------------------------------------------------------------------------
# SQL: a real PostgreSQL server


@pytest.fixture(scope="module")
def pg_table(postgres_url):
    """The demo rows as table `transactions` (with a `dt` column) in the session's PostgreSQL."""
    import sqlalchemy

    frame = demo_transactions(2000, seed=7)
    frame["dt"] = [DAYS[i * len(DAYS) // len(frame)] for i in range(len(frame))]
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        frame.to_sql("transactions", connection, index=False, if_exists="replace")
    engine.dispose()
    return postgres_url.replace("postgresql+psycopg://", "postgresql://"), frame


def test_a_postgresql_table_and_a_query_through_load_data(pg_table, tmp_path):
    url, frame = pg_table
    result, paths = _split(f"{url}?table=transactions", tmp_path)
    assert sum(result.rows.values()) == len(frame)
    lineage = result.spec.source_lineage
    assert lineage["kind"] == "sql" and lineage["table"] == "transactions" and lineage["rows"] == len(frame)
    raw = data_lib.read_table(f"{url}?table=transactions")
    assert hashlib.sha256(raw.to_csv(index=False).encode()).hexdigest() == lineage["sha256"]  # rows as read
    query = "SELECT * FROM transactions WHERE amount > 10"
    filtered, lineage = data_lib.read_dataset(f"{url}?query={query}", "dt >= 2026-11-15")
    expected = frame[(frame["amount"] > 10) & (frame["dt"] >= "2026-11-15")]
    assert sorted(filtered["transaction_id"]) == sorted(expected["transaction_id"])
    assert lineage["query"] == query and lineage["filter"] == "dt >= 2026-11-15"


def test_batch_predict_scores_a_postgresql_table(pg_table, trained_model, splits, tmp_path):
    from kfp import dsl

    from loopline import components, registry
    from loopline.core import logs
    from loopline.model.contract import ServingModel

    logs.quiet_libraries()
    url, frame = pg_table
    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    holdout, spec = data_lib.read_split(splits["holdout"])
    registry.register(str(trained_model), tracking_uri=tracking_uri, model_name="fraud", pipeline_run="run-1", tags={},
                      params={}, metrics={"roc_auc": 0.9}, input_example=holdout[list(spec.features)].head(2))
    predictions, metrics = art(dsl.Dataset, tmp_path, "predictions"), art(dsl.Metrics, tmp_path, "metrics")
    version = components.batch_predict.python_func(
        data_uri=f"{url}?query=SELECT * FROM transactions WHERE dt = '2026-12-01'", tracking_uri=tracking_uri,
        model_name="fraud", version="1", key_column="transaction_id", predictions=predictions, metrics=metrics,
        local_home=str(home))
    out = pd.read_parquet(predictions.path)
    wanted = frame[frame["dt"] == "2026-12-01"]
    assert version == "1" and sorted(out["transaction_id"]) == sorted(wanted["transaction_id"])
    scored = ServingModel(trained_model).predict_frame(wanted.set_index("transaction_id").loc[out["transaction_id"]])
    assert out["proba_1"].to_numpy() == pytest.approx(scored[:, 1], abs=1e-6)


def test_an_unreachable_database_is_one_line_naming_host_and_port(tmp_path):
    from .conftest import free_port

    port = free_port()  # nothing listens there
    with pytest.raises(DataError, match=rf"^cannot reach the database at 127\.0\.0\.1:{port} \(table t of "):
        _split(f"postgresql://loopline@127.0.0.1:{port}/postgres?table=t", tmp_path)


def test_a_failing_query_is_the_databases_message_in_one_line_without_credentials(pg_table, tmp_path, monkeypatch):
    url, _ = pg_table
    monkeypatch.setenv("LOOPLINE_TEST_DB_PASSWORD", "s3cr3t-value")  # trust auth: accepted and ignored
    uri = f"{url}?query=SELECT nope FROM transactions&password_env=LOOPLINE_TEST_DB_PASSWORD"
    with pytest.raises(DataError) as caught:
        _split(uri, tmp_path)
    text = str(caught.value)
    assert 'column "nope" does not exist' in text and text.startswith("the database at 127.0.0.1:")
    assert "\n" not in text and "s3cr3t-value" not in text and "SELECT nope" not in text
    with pytest.raises(DataError, match=r"relation \"absent\" does not exist"):
        data_lib.read_table(f"{url}?table=absent")
    with pytest.raises(DataError, match="partition_filter: column 'region' not found in the database source"):
        data_lib.read_table(f"{url}?table=transactions", "region = eu")
    assert not (tmp_path / "train.parquet").exists()


def test_a_password_in_the_url_is_refused_and_never_repeated(pg_table):
    url, _ = pg_table
    with_password = url.replace("loopline@", "loopline:hunter2@") + "?table=transactions"
    with pytest.raises(DataError, match="the URL holds a password; put it in the environment") as caught:
        data_lib.read_table(with_password)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(DataError, match="password_env names LOOPLINE_ABSENT_VARIABLE, which is not set"):
        data_lib.read_table(f"{url}?table=transactions&password_env=LOOPLINE_ABSENT_VARIABLE")
    assert "LOOPLINE_ABSENT_VARIABLE" not in os.environ


def test_sources_tell_sql_globs_and_folders_apart(lake, demo_csv):
    assert sources.is_sql("postgresql+psycopg://h/db?table=t") and sources.is_sql("sqlite:///x.db?table=t")
    assert not sources.is_sql("s3://bucket/prefix/") and sources.is_glob("s3://b/dt=*/x.parquet")
    assert sources.is_dataset(str(lake[0])) and not sources.is_dataset(str(demo_csv))


@pytest.mark.parametrize("case", ["no files", "different schemas", "filter column", "unreachable database"])
def test_loopline_run_stops_on_a_bad_source_with_one_line_before_training(tmp_path, case):
    import subprocess
    import sys

    from .conftest import free_port

    folder = tmp_path / "lake"
    folder.mkdir()
    message = ""
    if case == "no files":
        message = "no Parquet files match"
    else:
        write_partitioned(folder, demo_transactions(600, seed=4))
    if case == "different schemas":
        odd = folder / "dt=2026-12-01" / "part-0000.parquet"
        pq.write_table(pa.table({"amount": ["text"], "is_fraud": [0]}), odd)
        message = "dt=2026-12-01/part-0000.parquet differs from dt=2026-10-01/part-0000.parquet"
    data_uri, arguments = str(folder), []
    if case == "filter column":
        data_uri = str(folder / "dt=2026-1*" / "*.parquet")
        arguments, message = ["--partition-filter", "region = eu"], "partition_filter: column 'region' not found"
    if case == "unreachable database":
        data_uri = f"postgresql://loopline@127.0.0.1:{free_port()}/postgres?table=transactions"
        message = "cannot reach the database at 127.0.0.1:"
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "loopline.cli", "run", "--data", data_uri, "--target", "is_fraud",
                             "--ignore", *IGNORE, "--home", str(home), *arguments],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("loopline: error:") and message in lines[0], result.stderr
    assert not (home / "pipeline_root").exists() and not (home / "mlflow.db").exists()  # nothing ran or registered


def test_an_sqlite_file_is_a_sql_source_too(tmp_path):
    import sqlite3

    frame = demo_transactions(300, seed=1)
    with sqlite3.connect(tmp_path / "t.db") as connection:
        frame.to_sql("tx", connection, index=False)
    uri = f"sqlite:///{tmp_path / 't.db'}?table=tx"
    raw, lineage = data_lib.read_dataset(uri, "amount > 50")
    assert sorted(raw["transaction_id"]) == sorted(frame[frame["amount"] > 50]["transaction_id"])
    assert lineage["uri"] == f"sqlite:///{tmp_path / 't.db'}" and lineage["filter"] == "amount > 50"
    with pytest.raises(DataError, match="refused table nope of sqlite:///.*: no such table: nope"):
        data_lib.read_table(uri.replace("table=tx", "table=nope"))
