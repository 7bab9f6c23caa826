"""The training pipeline through kfp.local on data the way production keeps it: a Hive-partitioned
s3:// prefix on the S3 stand-in (under a partition filter) and a PostgreSQL table. The registered
version's lineage names the files with their ETags, or the table. The gate's baseline rule is
off: a small training on a few epochs is judged on its floor only, it must be registered."""

from __future__ import annotations

import json

import pytest

from loopline import registry
from loopline.data.demo import demo_transactions

from .conftest import LENIENT_GATES, s3_standin_env
from .test_sources import IGNORE, write_partitioned

pytestmark = pytest.mark.slow


def _train(tmp_path, data_uri: str, model_name: str, **parameters) -> dict[str, str]:
    """One training run; returns the tags of the version it registered."""
    from kfp import local
    from mlflow import MlflowClient

    from loopline.local.runguard import ServersOfRun
    from loopline.pipelines import training

    home = tmp_path / "home"
    tracking_uri = registry.local_tracking_uri(home)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with ServersOfRun(home, model_name):  # the model server the deploy step starts is stopped after
        training(data_uri=data_uri, target="is_fraud", tracking_uri=tracking_uri, model_name=model_name,
                 thresholds={**LENIENT_GATES, "baseline": False}, ignore_columns=IGNORE, n_trials=1, max_epochs=4, local_home=str(home),
                 **parameters)
    (run_dir,) = list((tmp_path / "root").iterdir())
    ran = {p.parent.name for p in run_dir.glob("*/executor_output.json")}
    assert {"load-data", "validate-data", "train-model", "evaluate-model", "register-model"} <= ran
    (version,) = MlflowClient(tracking_uri).search_model_versions(f"name='{model_name}'")
    return version.tags


def test_the_training_pipeline_on_a_partitioned_s3_prefix(tmp_path):
    import boto3

    frame = demo_transactions(1600, seed=5)
    folder = tmp_path / "lake"
    rows = write_partitioned(folder, frame)
    with s3_standin_env(tmp_path / "s3", "loopline-lake"):
        client = boto3.client("s3")
        for path in sorted(folder.rglob("*.parquet")):
            client.upload_file(str(path), "loopline-lake", f"transactions/{path.relative_to(folder)}")
        uri = "s3://loopline-lake/transactions/"
        tags = _train(tmp_path, uri, "lake-model", partition_filter="dt >= 2026-11-01")
        etags = {o["Key"]: o["ETag"].strip('"') for o in client.list_objects_v2(Bucket="loopline-lake")["Contents"]}
    lineage = json.loads(tags[registry.TAG_DATA_LINEAGE])
    assert tags[registry.TAG_DATA_URI] == uri and tags[registry.TAG_DATA_SHA256] == lineage["sha256"]
    assert lineage["filter"] == "dt >= 2026-11-01" and lineage["file_count"] == 6
    assert {f"transactions/{e['path']}": e["etag"] for e in lineage["files"]} == {
        k: v for k, v in etags.items() if not k.startswith("transactions/dt=2026-10-01/")}
    assert float(tags["loopline.train_rows"]) < len(frame) - rows["2026-10-01"]


def test_the_training_pipeline_on_a_postgresql_table(tmp_path, postgres_url):
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        demo_transactions(1600, seed=6).assign(dt="2026-12-01").to_sql("training_rows", connection, index=False,
                                                                         if_exists="replace")
    engine.dispose()
    uri = postgres_url.replace("postgresql+psycopg://", "postgresql://") + "?table=training_rows"
    tags = _train(tmp_path, uri, "table-model")
    lineage = json.loads(tags[registry.TAG_DATA_LINEAGE])
    assert lineage["kind"] == "sql" and lineage["table"] == "training_rows" and lineage["rows"] == 1600
    assert tags[registry.TAG_DATA_URI] == uri and tags[registry.TAG_DATA_SHA256] == lineage["sha256"]
