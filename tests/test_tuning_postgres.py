"""Parallel tuning on a real PostgreSQL server (tests/postgres.py starts one per session; skipped
with a message where PostgreSQL is not installed): two worker processes share one Optuna study,
race to set up a new database, and one of them is killed mid-trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from loopline.data.tables import read_split, write_split
from loopline.tuning import storage as tuning_storage
from loopline.tuning import study as tuning
from loopline.tuning import worker as tuning_worker

from .conftest import FAST_SEARCH_SPACE

SPACE = {**FAST_SEARCH_SPACE, "units": {"low": 8, "high": 32}, "batch_size": {"choices": [64]}}
N_TRIALS = 4


@pytest.fixture(scope="module")
def small_splits(splits, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pg-splits")
    out = {}
    for name, rows in (("train", 600), ("validation", 300)):
        frame, spec = read_split(splits[name])
        out[name] = folder / f"{name}.parquet"
        write_split(frame.head(rows), spec, out[name])
    return out


@pytest.fixture()
def database(postgres_url, request) -> str:
    """A new, empty database on the session's server: the URL the workers get."""
    import sqlalchemy

    name = "optuna_" + request.node.name.replace("test_", "")[:40].lower()
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sqlalchemy.engine.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)


def _worker(splits, url: str, worker: int, log: Path) -> subprocess.Popen:
    settings = tuning.TuningSettings(storage_url=url, study_name="shared", n_trials=N_TRIALS, max_epochs=2, seed=9,
                                     pruner="none", search_space=SPACE)
    command = tuning_worker.worker_command(train=splits["train"], validation=splits["validation"], settings=settings,
                                           worker=worker, threads=1, heartbeat_interval=1.0, grace_period=4.0)
    with open(log, "w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _wait_for(condition, what: str, processes, logs, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        ended = [p for p in processes if p.poll() is not None]
        if ended:
            pytest.fail(f"a worker ended while waiting for {what}: " + "\n".join(log.read_text()[-2000:] for log in logs))
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}: " + "\n".join(log.read_text()[-2000:] for log in logs))


def test_two_workers_share_a_postgresql_study_race_to_set_it_up_and_replace_a_killed_trial(
        small_splits, database, tmp_path):
    import optuna
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine = sqlalchemy.create_engine(database)
    # Another worker is creating Optuna's tables (its transaction still open) when both start:
    # their own CREATE TABLE waits for it, then finds the tables taken.
    holder = engine.connect()
    setup = holder.begin()
    models.BaseModel.metadata.create_all(holder)
    logs = [tmp_path / f"worker{w}.log" for w in (1, 2)]
    workers = [_worker(small_splits, database, w, log) for w, log in zip((1, 2), logs, strict=True)]
    try:
        # (in autocommit: a transaction would see one snapshot of pg_stat_activity)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
            waiting = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'")
            _wait_for(lambda: watch.execute(waiting).scalar() >= 2, "both workers to wait for the tables",
                      workers, logs)
        setup.commit()
        holder.close()

        storage = tuning_storage.open_storage(database)

        def running_trial_of_worker_1():
            try:
                trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
            except KeyError:  # no study yet
                return []
            return [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get(tuning.WORKER_ATTR) == 1]

        (killed,) = _wait_for(running_trial_of_worker_1, "a trial of worker 1", workers, logs)
        os.kill(workers[0].pid, signal.SIGKILL)  # mid-trial: its heartbeat stops
        assert workers[0].wait(timeout=30) == -signal.SIGKILL
        assert workers[1].wait(timeout=300) == 0, logs[1].read_text()[-3000:]
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
        engine.dispose()

    for log in logs:  # both lost the race to set up the tables, and tried again
        assert "another worker is setting it up" in log.read_text(), log.read_text()[-3000:]
    (report,) = [json.loads(line) for line in logs[1].read_text().splitlines() if line.startswith('{"worker"')]
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    counted = [t for t in trials if t.state == TrialState.COMPLETE]
    (stale,) = [t for t in trials if t.state == TrialState.FAIL]
    assert stale.number == killed.number and tuning.ERROR_ATTR not in stale.user_attrs  # failed by its heartbeat
    assert len(counted) == N_TRIALS and not [t for t in trials if t.state == TrialState.RUNNING]
    assert report == {"worker": 2, "ran": len([t for t in counted if t.user_attrs[tuning.WORKER_ATTR] == 2]),
                      "counted": N_TRIALS}
    # worker 2 waited for the killed trial until its heartbeat went stale, then ran one in its place
    replacements = [t for t in counted if t.user_attrs[tuning.WORKER_ATTR] == 2 and t.number > stale.number
                    and t.datetime_start >= stale.datetime_complete]
    assert replacements, [(t.number, t.state.name, t.datetime_start, t.datetime_complete) for t in trials]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)  # no point drawn twice
    with sqlalchemy.create_engine(database).connect() as connection:  # the study lives in PostgreSQL
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM trials")).scalar() == len(trials)
        assert connection.dialect.name == "postgresql"
