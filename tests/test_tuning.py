"""Tuning: settings, storage, resumable and parallel studies (real SQLite), MLflow runs, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl

from loopline import components
from loopline.core.errors import DataError, LooplineError, TuningConfigError
from loopline.data.tables import read_split, write_split
from loopline.tuning import storage as tuning_storage
from loopline.tuning import study as tuning
from loopline.tuning import worker as tuning_worker

from .conftest import FAST_SEARCH_SPACE, ROOT

# one configuration family that learns the demo data in two or three epochs
TINY_SPACE = {**FAST_SEARCH_SPACE, "units": {"low": 8, "high": 32}, "batch_size": {"choices": [64]}}


@pytest.fixture(scope="module")
def small_splits(splits, tmp_path_factory) -> dict[str, Path]:
    """Smaller copies of the session splits: quick trials for the tests that run many."""
    folder = tmp_path_factory.mktemp("small")
    out = {}
    for name, rows in (("train", 600), ("validation", 300)):
        frame, spec = read_split(splits[name])
        out[name] = folder / f"{name}.parquet"
        write_split(frame.head(rows), spec, out[name])
    return out


def _frames(paths):
    train, spec = read_split(paths["train"])
    validation, _ = read_split(paths["validation"])
    return train, validation, spec


def _study(url: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url)


# --------------------------------------------------------------------------------------------
# Settings and storage: clear one-line errors before any work


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trials": 0}, "n_trials must be a whole number of at least 1, got 0"),
        ({"n_trials": -3}, "n_trials"),
        ({"max_epochs": 0}, "max_epochs must be at least 1"),
        ({"timeout_seconds": -1.0}, "timeout_seconds must be 0 (no limit) or positive, got -1.0"),
        ({"objective": "f1"}, "objective 'f1' is not one of roc_auc, accuracy, log_loss"),
        ({"pruner": "asha"}, "pruner 'asha' is not one of median, hyperband, none"),
        ({"storage_url": "redis://cache:6379"}, "is not a database URL"),
        ({"storage_url": "/tmp/study.db"}, "is not a database URL"),
        ({"storage_url": "sqlite://"}, "names no database file"),
        ({"search_space": {"units": {"low": 64, "high": 16}}}, "low 64 is above high 16"),
        ({"search_space": {"dropout": 0.2}}, "give {'low': .., 'high': ..}"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(TuningConfigError) as error:
        tuning.TuningSettings(**kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_objectives_have_their_direction():
    assert tuning.TuningSettings(objective="log_loss").direction == "minimize"
    assert tuning.TuningSettings(objective="accuracy").direction == "maximize"
    assert tuning.TuningSettings().metric == "val_roc_auc"


def test_unreachable_postgresql_is_one_line_without_the_password():
    with pytest.raises(TuningConfigError) as error:
        tuning_storage.open_storage("postgresql://loopline:s3cret@127.0.0.1:1/optuna")
    text = str(error.value)
    assert text.startswith("cannot use the tuning storage 'postgresql://loopline:***@127.0.0.1:1/optuna'")
    assert "s3cret" not in text and "\n" not in text


def test_sqlite_in_a_missing_folder_is_named(tmp_path):
    with pytest.raises(TuningConfigError, match="does not exist"):
        tuning_storage.open_storage(f"sqlite:///{tmp_path}/nope/study.db")


def test_only_a_database_optuna_has_not_set_up_is_opened_under_the_lock(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    assert not tuning_storage._optuna_sqlite_ready(url)  # no file yet
    (tmp_path / "study.db").write_bytes(b"")
    assert not tuning_storage._optuna_sqlite_ready(url)  # a file without Optuna's tables
    (tmp_path / "other.db").write_text("not a database")
    assert not tuning_storage._optuna_sqlite_ready(f"sqlite:///{tmp_path}/other.db")
    tuning_storage.open_storage(url)
    assert tuning_storage._optuna_sqlite_ready(url)  # set up: workers open it side by side
    assert not tuning_storage._optuna_sqlite_ready("postgresql://loopline@db:5432/optuna")


def test_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(tuning_storage.PASSWORD_ENV, "p@ss/word")
    assert tuning_storage._with_password("postgresql://loopline@db:5432/optuna") == "postgresql://loopline:p%40ss%2Fword@db:5432/optuna"
    assert tuning_storage._with_password("postgresql://u:given@db/optuna") == "postgresql://u:given@db/optuna"


def test_study_name_derives_from_the_pipeline_run():
    assert tuning.study_name_for("", "loopline-training-20260101") == "loopline-loopline-training-20260101"
    assert tuning.study_name_for("fraud", "run-1") == "fraud"
    # kfp.local's job name inside a ParallelFor iteration is "<run>/<iteration>"
    assert tuning.study_name_for("", "loopline-training-1/for-loop-1-iteration-0") == "loopline-loopline-training-1"


def test_a_constant_feature_is_named_before_training(small_splits, tmp_path):
    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    with pytest.raises(DataError, match="feature column 'channel' is constant in the training split"):
        tune_and_train(train.assign(channel="chip"), validation, spec, settings=tuning.TuningSettings(n_trials=1), export_dir=tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_tune_model_needs_a_storage(small_splits, tmp_path):
    train, validation = (dsl.Dataset(name=n, uri=str(small_splits[n]), metadata={}) for n in ("train", "validation"))
    with pytest.raises(TuningConfigError, match="share their study through storage_url, which is empty"):
        components.tune_model.python_func(
            train=train, validation=validation, metrics=dsl.Metrics(name="m", uri=str(tmp_path / "m"), metadata={}),
            storage_url="",
        )


def test_a_study_tuned_for_another_objective_is_not_mixed_in(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    storage = tuning_storage.open_storage(url)
    tuning.load_study(tuning.TuningSettings(storage_url=url), storage, study_name="s")
    with pytest.raises(TuningConfigError, match="was tuned for roc_auc, not accuracy"):
        tuning.load_study(tuning.TuningSettings(storage_url=url, objective="accuracy"), storage, study_name="s")


# --------------------------------------------------------------------------------------------
# Objective, pruners, MLflow runs and the report (one small real study each)


def test_log_loss_objective_minimises_and_every_trial_reports_epochs(small_splits, tmp_path):
    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    result = tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=2, max_epochs=3, seed=5, objective="log_loss", pruner="none", search_space=TINY_SPACE), export_dir=tmp_path / "m")
    values = [t["value"] for t in result.trials if t["state"] == "COMPLETE"]
    assert result.objective == "log_loss" and result.best_value == min(values)
    assert all(1 <= t["epochs"] <= 3 for t in result.trials)
    assert 1 <= result.epochs <= 3 and set(result.curves) == {"loss", "accuracy"}


def test_median_pruning_stops_poor_trials_early(small_splits, tmp_path):
    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    # a wide learning-rate range: some trials learn slowly, and the median pruner stops them
    space = {**TINY_SPACE, "learning_rate": {"low": 1e-5, "high": 1e-2, "log": True}}
    url = f"sqlite:///{tmp_path}/study.db"
    result = tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=7, max_epochs=6, seed=2, pruner="median", search_space=space, storage_url=url, study_name="pruning"), export_dir=tmp_path / "m")
    pruned = [t for t in result.trials if t["state"] == "PRUNED"]
    assert pruned, result.trials
    assert all(t["epochs"] < 6 for t in pruned)
    study = _study(url, "pruning")
    assert all(t.intermediate_values for t in study.trials)  # every epoch's objective was reported


def test_hyperband_prunes_trials_at_its_rungs(small_splits, tmp_path):
    """Hyperband (reduction factor 3 from one epoch) judges a trial only at its bracket's rungs,
    epoch indices 1, 3, 9, ...: every pruned trial ends at a rung, where it was compared."""
    from optuna.trial import TrialState

    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    space = {**TINY_SPACE, "learning_rate": {"low": 1e-5, "high": 1e-2, "log": True}}
    url, max_epochs = f"sqlite:///{tmp_path}/study.db", 9
    result = tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=8, max_epochs=max_epochs, seed=2, pruner="hyperband", objective="accuracy", search_space=space, storage_url=url, study_name="hyperband"), export_dir=tmp_path / "m")
    rungs = {3**k for k in range(3)}  # epoch indices where some bracket judges (3**2 = 9 is past the last epoch)
    trials = _study(url, "hyperband").trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state.name, sorted(t.intermediate_values)) for t in trials]
    for t in pruned:
        judged = sorted(k for k in t.system_attrs if k.startswith("completed_rung_"))
        assert t.last_step in rungs and t.last_step < max_epochs - 1, (t.number, t.last_step)
        # the value it was judged on at its last rung is its objective at that epoch
        assert judged and t.system_attrs[judged[-1]] == t.intermediate_values[t.last_step], (t.number, t.system_attrs)
        assert t.user_attrs["epochs"] == t.last_step + 1
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in result.trials)


def test_the_timeout_ends_tuning_between_trials(small_splits, tmp_path):
    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    result = tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=50, max_epochs=2, timeout_seconds=0.5, search_space=TINY_SPACE), export_dir=tmp_path / "m")
    assert len(result.trials) == 1 and (tmp_path / "m" / "1" / "saved_model.pb").is_file()


def test_mlflow_parent_run_nested_trials_and_the_final_model(small_splits, tmp_path):
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    from loopline import registry
    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    tracking_uri = registry.local_tracking_uri(tmp_path / "mlflow")
    report = tmp_path / "report.html"
    result = tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=2, max_epochs=3, seed=4, pruner="none", search_space=TINY_SPACE, tracking_uri=tracking_uri, study_name="tracked"), export_dir=tmp_path / "m", report_path=report)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(tuning.TUNING_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.data.params["n_trials"] == "2"
    assert sorted(r.data.tags["loopline.trial"] for r in children) == ["0", "1"]
    for child in children:
        assert child.data.tags["loopline.trial_state"] == "complete" and child.info.status == "FINISHED"
        assert set(child.data.params) == set(tuning.TuningSettings().search_space)
        history = client.get_metric_history(child.info.run_id, "val_roc_auc")  # intermediate values
        assert [m.step for m in history] == list(range(len(history))) and history
        assert "best_roc_auc" in child.data.metrics
    assert parent.data.metrics["best_roc_auc"] == pytest.approx(result.best_value)
    assert len(client.get_metric_history(parent.info.run_id, "final_loss")) == result.epochs  # curves
    info = get_model_info(result.model_uri)
    assert [c.name for c in info.signature.inputs.inputs] == list(spec.features)
    assert info.saved_input_example_info is not None
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"best_params.json", "report.html"}
    # the report opens offline: plotly.js is inlined, no script is fetched
    text = report.read_text()
    assert "<script src=" not in text and len(text) > 1_000_000
    for heading in ("Optimization history", "Intermediate values", "Parameter importances", "Final model"):
        assert heading in text
    assert text.count("Plotly.newPlot") >= 4


def test_failed_trials_are_recorded_and_a_study_without_a_completed_trial_is_an_error(small_splits, tmp_path):
    from mlflow import MlflowClient

    from loopline import registry
    from loopline.tuning.training import tune_and_train

    train, validation, spec = _frames(small_splits)
    tracking_uri = registry.local_tracking_uri(tmp_path / "mlflow")
    diverging = {**TINY_SPACE, "learning_rate": {"low": 1e30, "high": 1e31, "log": True}}
    with pytest.raises(LooplineError, match="tuning finished without a completed trial: "):
        tune_and_train(train, validation, spec, settings=tuning.TuningSettings(n_trials=2, max_epochs=2, search_space=diverging, tracking_uri=tracking_uri, study_name="diverging"), export_dir=tmp_path / "m")
    assert not (tmp_path / "m").exists()
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(tuning.TUNING_EXPERIMENT)
    children = client.search_runs([experiment.experiment_id], "tags.`loopline.trial_state` = 'fail'")
    assert len(children) == 2 and all(r.info.status == "FAILED" and r.data.tags["loopline.error"] for r in children)


# --------------------------------------------------------------------------------------------
# Resumable and parallel studies: worker processes against one real SQLite storage


def _worker(small_splits, url, name, *, n_trials, worker=1, max_epochs=3, threads=1, grace=4.0, log_path=None):
    settings = tuning.TuningSettings(storage_url=url, study_name=name, n_trials=n_trials, max_epochs=max_epochs, seed=9,
                                     pruner="none", search_space=TINY_SPACE)
    command = tuning_worker.worker_command(
        train=small_splits["train"], validation=small_splits["validation"], settings=settings, worker=worker,
        threads=threads, heartbeat_interval=1.0, grace_period=grace,
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if not log_path:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    with open(log_path, "w") as out:  # the worker writes to its own copy of the file descriptor
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def _ask_and_tell(study, objective) -> dict:
    trial = study.ask()
    x, units = trial.suggest_float("x", -5.0, 5.0), trial.suggest_int("units", 16, 256, log=True)
    study.tell(trial, objective(x, units))
    return {"number": trial.number, "x": x, "units": units}


def test_the_nth_trial_draws_the_same_point_whichever_worker_runs_it(tmp_path):
    """One process, or two alternating on a shared study, or a process resuming it: the
    start-up points (trial n from seed + n) agree, so parallel studies explore like one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(x, units):
        return -((x - 1.0) ** 2) - abs(units - 64) / 64

    def study(url, sampler):
        return optuna.create_study(storage=url, study_name="s", direction="maximize", sampler=sampler,
                                   load_if_exists=True)

    alone = study(f"sqlite:///{tmp_path}/alone.db", tuning.make_sampler(42, shared=True))
    sequence = [_ask_and_tell(alone, objective) for _ in range(14)]

    shared_url = f"sqlite:///{tmp_path}/shared.db"
    workers = [study(shared_url, tuning.make_sampler(42, shared=True)) for _ in range(2)]
    shared = [_ask_and_tell(workers[i % 2], objective) for i in range(6)]
    # a third process resumes the study later and runs the rest
    shared += [_ask_and_tell(study(shared_url, tuning.make_sampler(42, shared=True)), objective) for _ in range(8)]

    assert [t["number"] for t in shared] == list(range(14))
    startup = 10  # TPE's random start-up trials
    assert shared[:startup] == sequence[:startup]
    assert len({(t["x"], t["units"]) for t in shared}) == 14  # no point drawn twice
    assert shared[startup:] == sequence[startup:]  # sequential turns: TPE sees the same history
    other_seed = study(f"sqlite:///{tmp_path}/other.db", tuning.make_sampler(7, shared=True))
    assert _ask_and_tell(other_seed, objective) != sequence[0]


def test_a_killed_study_resumes_without_losing_or_repeating_trials(small_splits, tmp_path):
    from optuna.trial import TrialState

    url, name = f"sqlite:///{tmp_path}/study.db", "resume"
    first = _worker(small_splits, url, name, n_trials=4, max_epochs=4, log_path=tmp_path / "first.log")
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # kill it while a trial runs, after one completed
            if Path(f"{tmp_path}/study.db").exists():
                try:
                    states = [t.state for t in _study(url, name).trials]
                except Exception:  # the study is not created yet
                    states = []
                if states.count(TrialState.COMPLETE) >= 1 and TrialState.RUNNING in states:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the first worker completed no trial in time: " + (tmp_path / "first.log").read_text()[-2000:])
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    before = {t.number: (t.params, t.value) for t in _study(url, name).trials if t.state == TrialState.COMPLETE}
    assert any(t.state == TrialState.RUNNING for t in _study(url, name).trials)  # left behind by the kill

    second = _worker(small_splits, url, name, n_trials=4, max_epochs=4, log_path=tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    trials = _study(url, name).trials
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(counted) == 4  # the budget, not more and not less
    assert {t.number: (t.params, t.value) for t in counted if t.number in before} == before  # none lost
    assert len(stale) == 1 and tuning.ERROR_ATTR not in stale[0].user_attrs  # the killed trial, not counted
    assert len({json.dumps(t.params, sort_keys=True) for t in counted}) == 4  # none repeated
    assert not any(t.state == TrialState.RUNNING for t in trials)


def test_parallel_workers_share_one_study_then_train_model_only_retrains(small_splits, tmp_path):
    from optuna.trial import TrialState

    url, name = f"sqlite:///{tmp_path}/study.db", "parallel"
    workers = [_worker(small_splits, url, name, n_trials=4, worker=w, log_path=tmp_path / f"w{w}.log") for w in (1, 2)]
    for w, process in zip((1, 2), workers, strict=True):
        assert process.wait(timeout=300) == 0, (tmp_path / f"w{w}.log").read_text()[-3000:]
    trials = _study(url, name).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4 and len(trials) == 4
    assert {t.user_attrs[tuning.WORKER_ATTR] for t in trials} == {1, 2}  # both took trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4

    # the final step: the study is complete, so train_model only retrains the best configuration
    def art(cls, key, path=None):
        return cls(name=key, uri=str(path or tmp_path / key), metadata={})

    outs = {"model": art(dsl.Model, "model"), "metrics": art(dsl.Metrics, "metrics"),
            "best_params": art(dsl.Artifact, "best_params"), "report": art(dsl.HTML, "report")}
    components.train_model.python_func(
        train=art(dsl.Dataset, "train", small_splits["train"]),
        validation=art(dsl.Dataset, "validation", small_splits["validation"]),
        n_trials=4, max_epochs=3, timeout_seconds=0.0, search_space=TINY_SPACE, seed=9, objective="roc_auc",
        pruner="none", storage_url=url, study_name=name, pipeline_run="", tracking_uri="", **outs,
    )
    metrics = outs["metrics"].metadata
    assert metrics["trials_run_by_this_step"] == 0 and metrics["trials"] == 4 and metrics["trials_complete"] == 4
    best = json.loads(Path(outs["best_params"].path).read_text())
    study = _study(url, name)
    assert best["params"] == study.best_params and best["best_value"] == pytest.approx(study.best_value)
    assert best["study_name"] == name and best["final_curves"]["loss"]
    assert (Path(outs["model"].path) / "1" / "saved_model.pb").is_file()
    assert "Parameter importances" in Path(outs["report"].path).read_text()


# --------------------------------------------------------------------------------------------
# The pipeline: ParallelFor workers and resources compiled into the YAML


def test_training_pipeline_compiles_parallel_workers_and_resources():
    import yaml

    spec = yaml.safe_load((ROOT / "compiled" / "training.yaml").read_text())
    root = spec["root"]["dag"]["tasks"]
    loop = next(t for t in root.values() if t["taskInfo"]["name"] == "tuning-workers")
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--tuning_workers"}
    assert spec["root"]["inputDefinitions"]["parameters"]["tuning_workers"]["defaultValue"] == []
    assert set(root["train-model"]["dependentTasks"]) >= {loop["componentRef"]["name"].replace("comp-", ""), "validate-data"}
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-tune-model", "exec-train-model"):
        resources = executors[name]["container"]["resources"]
        assert resources["resourceCpuLimit"] == "{{$.inputs.parameters['pipelinechannel--train_cpu_limit']}}"
        assert resources["resourceMemoryRequest"] == "{{$.inputs.parameters['pipelinechannel--train_memory_request']}}"
        assert resources["accelerator"]["resourceCount"] == (
            "{{$.inputs.parameters['pipelinechannel--train_accelerator_count']}}")
    # the loop's group receives the resource parameters (kfp does not wire them by itself)
    group_inputs = spec["components"][loop["componentRef"]["name"]]["inputDefinitions"]["parameters"]
    assert {"pipelinechannel--train_cpu_limit", "pipelinechannel--train_accelerator_type"} <= set(group_inputs)


def test_constant_columns_in_a_frame(small_splits):
    train, _, spec = _frames(small_splits)
    from loopline.tuning.training import check_constant_features

    check_constant_features(train, spec)  # the demo data has none
    with pytest.raises(DataError, match="'distance_km' is constant .*every row is missing"):
        check_constant_features(train.assign(distance_km=np.nan), spec)


@pytest.mark.slow
def test_training_pipeline_with_parallel_workers_through_kfp_local_and_a_failed_gate(tmp_path):
    """kfp.local runs the ParallelFor: two tune_model tasks share a SQLite study, train_model
    retrains the best; the gate is set out of reach, so nothing is registered or deployed."""
    from kfp import local
    from mlflow import MlflowClient

    from loopline import registry
    from loopline.data.demo import demo_transactions
    from loopline.pipelines import training

    data = tmp_path / "data.csv"
    demo_transactions(1200, seed=3).to_csv(data, index=False)
    url = f"sqlite:///{tmp_path}/study.db"
    tracking_uri = registry.local_tracking_uri(tmp_path / "home")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    training(
        data_uri=str(data), target="is_fraud", tracking_uri=tracking_uri, model_name="parallel",
        thresholds={"roc_auc": 0.9999}, ignore_columns=["transaction_id"], n_trials=3, max_epochs=2,
        local_home=str(tmp_path / "home"), tuning_storage_url=url, tuning_workers=[1, 2],
    )
    (run_dir,) = list((tmp_path / "root").iterdir())
    ran = {p.parent.name for p in run_dir.glob("*/executor_output.json")}
    assert {"load-data", "validate-data", "train-model", "evaluate-model"} <= ran
    assert "register-model" not in ran and "deploy-model" not in ran
    evaluate = json.loads((run_dir / "evaluate-model" / "executor_output.json").read_text())
    assert evaluate["parameterValues"]["Output"] is False  # the gate's verdict
    assert not (tmp_path / "home" / "serving").exists()  # no model server was started
    tuned = [json.loads(p.read_text()) for p in run_dir.rglob("tune-model/executor_output.json")]
    assert len(tuned) == 2  # one per worker
    train = json.loads((run_dir / "train-model" / "executor_output.json").read_text())
    metrics = train["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["trials_run_by_this_step"] == 0 and metrics["trials"] == 3
    # the study is named after the run: the workers and train_model shared it
    (study_name,) = [s.study_name for s in __import__("optuna").get_all_study_summaries(url)]
    assert study_name == f"loopline-{run_dir.name}"
    assert {t.user_attrs[tuning.WORKER_ATTR] for t in _study(url, study_name).trials} <= {1, 2}
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(tuning.TUNING_EXPERIMENT).experiment_id])
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 1 and len(runs) == 4
    assert MlflowClient(tracking_uri).search_registered_models() == []
