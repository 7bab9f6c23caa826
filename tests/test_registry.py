"""MLflow registration against a real SQLite-backed tracking store."""

from __future__ import annotations

import pytest

from loopline import registry
from loopline.core import logs
from loopline.core.errors import LooplineError
from loopline.data.tables import read_split


@pytest.fixture()
def tracking_uri(tmp_path):
    logs.quiet_libraries()
    return registry.local_tracking_uri(tmp_path / "home")


def _register(trained_model, tracking_uri, splits, run="run-1"):
    holdout, spec = read_split(splits["holdout"])
    return registry.register(
        str(trained_model), tracking_uri=tracking_uri, model_name="fraud", pipeline_run=run,
        tags={registry.TAG_DATA_SHA256: spec.source_sha256}, params={"units": 32}, metrics={"roc_auc": 0.9},
        input_example=holdout[list(spec.features)].head(2),
    )


def test_register_sets_challenger_and_lineage_tags(trained_model, tracking_uri, splits, tmp_path):
    from mlflow import MlflowClient

    version = _register(trained_model, tracking_uri, splits)
    assert version.created and version.version == "1"
    assert registry.aliases(tracking_uri, "fraud") == {"challenger": "1"}
    mv = MlflowClient(tracking_uri).get_model_version("fraud", "1")
    _, spec = read_split(splits["train"])
    assert mv.tags[registry.TAG_PIPELINE_RUN] == "run-1"
    assert mv.tags[registry.TAG_DATA_SHA256] == spec.source_sha256
    # artifacts live beside the SQLite file, not in the working directory
    assert (tmp_path / "home" / "mlartifacts").is_dir()
    # the registered files are the SavedModel in TF Serving layout
    path = registry.saved_model_dir(tracking_uri, "fraud", "1", tmp_path / "dl")
    assert (path / "1" / "saved_model.pb").is_file()


def test_registering_the_same_pipeline_run_twice_gives_one_version(trained_model, tracking_uri, splits):
    from mlflow import MlflowClient

    first = _register(trained_model, tracking_uri, splits, run="run-7")
    again = _register(trained_model, tracking_uri, splits, run="run-7")
    other = _register(trained_model, tracking_uri, splits, run="run-8")
    assert (first.version, again.version, other.version) == ("1", "1", "2")
    assert not again.created
    assert len(MlflowClient(tracking_uri).search_model_versions("name = 'fraud'")) == 2


def test_champion_moves_only_when_set(trained_model, tracking_uri, splits):
    _register(trained_model, tracking_uri, splits, run="a")
    registry.set_alias(tracking_uri, "fraud", registry.CHAMPION, "1")
    _register(trained_model, tracking_uri, splits, run="b")
    assert registry.aliases(tracking_uri, "fraud") == {"champion": "1", "challenger": "2"}


def test_a_directory_that_is_not_a_model_registers_nothing(tmp_path, tracking_uri):
    from mlflow import MlflowClient

    (tmp_path / "empty").mkdir()
    with pytest.raises(LooplineError, match="not a Loopline model"):
        registry.register(str(tmp_path / "empty"), tracking_uri=tracking_uri, model_name="fraud",
                          pipeline_run="x", tags={}, params={}, metrics={})
    assert MlflowClient(tracking_uri).search_registered_models() == []
