"""Optuna studies: settings, pruners, the sampler, the shared trial budget.

A study lives in memory (the default) or in an RDB storage (a SQLite file, PostgreSQL in a
cluster; opened by `tuning_storage`). With RDB storage the study is resumable and shared: any number of worker processes
load it by name and run trials until the study holds `n_trials` finished trials (complete,
pruned, or failed with an error). A trial left RUNNING by a killed process stops sending
heartbeats; after the grace period it is marked FAIL and counts for nothing, so a restarted or
parallel worker runs a trial in its place.

Nothing here imports TensorFlow; the trial objective itself lives in `loopline.tuning.training`, a
study's MLflow runs in `tuning_mlflow`, its storage in `tuning_storage`, the report in `tuning_report`, a worker process in
`tuning_worker`."""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loopline.core import progress, rules
from loopline.core.errors import TuningConfigError
from loopline.tuning.storage import check_storage_url, masked

log = logging.getLogger(__name__)

OBJECTIVES = {"roc_auc": "maximize", "accuracy": "maximize", "log_loss": "minimize"}

PRUNERS = ("median", "hyperband", "none")

ERROR_ATTR = "loopline_error"  # user attr of a trial that failed with an error (it counts)

WORKER_ATTR = "loopline_worker"

TUNING_EXPERIMENT = "loopline-tuning"

TAG_STUDY = "loopline.study"

DEFAULT_SEARCH_SPACE: dict[str, Any] = {
    "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
    "hidden_layers": {"low": 1, "high": 3},
    "units": {"low": 16, "high": 256, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "batch_size": {"choices": [64, 128, 256]},
}

def check_search_space(space: dict[str, Any]) -> dict[str, Any]:
    merged = {**DEFAULT_SEARCH_SPACE, **(space or {})}
    for name, rng in merged.items():
        if name not in DEFAULT_SEARCH_SPACE:
            raise TuningConfigError(f"search_space: unknown hyperparameter '{name}' (known: {', '.join(DEFAULT_SEARCH_SPACE)})")
        if not isinstance(rng, dict) or not ("choices" in rng or {"low", "high"} <= set(rng)):
            raise TuningConfigError(f"search_space['{name}']: give {{'low': .., 'high': ..}} or {{'choices': [..]}}, got {rng!r}")
        if "choices" in rng:
            if not rng["choices"]:
                raise TuningConfigError(f"search_space['{name}']: choices must not be empty")
            continue
        if rng["low"] > rng["high"]:
            raise TuningConfigError(f"search_space['{name}']: low {rng['low']} is above high {rng['high']}")
        if rng.get("log") and rng["low"] <= 0:
            raise TuningConfigError(f"search_space['{name}']: a log range needs low > 0, got {rng['low']}")
    return merged

@dataclass(frozen=True, kw_only=True)
class TuningSettings:
    """What a study is asked to do: the one declaration of the tuning settings and their
    defaults (`train_model` and `tune_model` build it from their parameters). Checked on
    construction, before any data is read."""

    n_trials: int = 4
    max_epochs: int = 15
    timeout_seconds: float = 0.0  # 0: no limit
    objective: str = "roc_auc"
    pruner: str = "median"
    storage_url: str = ""  # empty: in memory
    study_name: str = ""
    seed: int = 42
    search_space: dict[str, Any] = field(default_factory=dict)  # overrides of DEFAULT_SEARCH_SPACE
    tracking_uri: str = ""  # empty: no MLflow tracking

    def __post_init__(self) -> None:
        """The checks of every tuning setting, each a one-line TuningConfigError."""
        whole = isinstance(self.n_trials, (int, float)) and not isinstance(self.n_trials, bool) and math.isfinite(
            self.n_trials) and int(self.n_trials) == self.n_trials
        if not whole or self.n_trials < 1:
            raise TuningConfigError(f"n_trials must be a whole number of at least 1, got {self.n_trials}")
        if rules.number("max_epochs", self.max_epochs, TuningConfigError, whole=True) < 1:
            raise TuningConfigError(f"max_epochs must be at least 1, got {self.max_epochs}")
        rules.number("seed", self.seed, TuningConfigError, low=0, whole=True)
        if self.timeout_seconds is None:
            object.__setattr__(self, "timeout_seconds", 0.0)
        if rules.number("timeout_seconds", self.timeout_seconds, TuningConfigError) < 0:
            raise TuningConfigError(f"timeout_seconds must be 0 (no limit) or positive, got {self.timeout_seconds}")
        if self.objective not in OBJECTIVES:
            raise TuningConfigError(f"objective '{self.objective}' is not one of {', '.join(OBJECTIVES)}")
        if self.pruner not in PRUNERS:
            raise TuningConfigError(f"pruner '{self.pruner}' is not one of {', '.join(PRUNERS)}")
        check_storage_url(self.storage_url)
        rules.mapping("search_space", self.search_space or {}, TuningConfigError)
        object.__setattr__(self, "search_space", check_search_space(self.search_space or {}))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TuningSettings:
        return cls(**json.loads(text))

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def metric(self) -> str:
        """The Keras log key the objective is reported under each epoch."""
        return f"val_{self.objective}"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

def study_name_for(study_name: str, pipeline_run: str) -> str:
    """The study name: given, else derived from the pipeline run (a rerun of the run resumes it)."""
    if study_name:
        return study_name
    # kfp.local names a task inside a ParallelFor or a nested pipeline "<run>/<group>/...": the
    # workers and the final step share the run's study only through the run's own name
    run = pipeline_run.split("/", 1)[0]
    return f"loopline-{run}" if run else "loopline"

def make_pruner(name: str, *, max_epochs: int):
    import optuna

    if name == "median":
        # the first trials set the bar; a trial is judged from its third epoch on
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 3), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise TuningConfigError(f"pruner '{name}' is not one of {', '.join(PRUNERS)}")

def make_sampler(seed: int, *, shared: bool):
    """Optuna's TPE sampler, seeded per trial: trial n draws from the stream of `seed + n`.

    The n-th trial of a study therefore gets the same draw whichever process runs it: one worker
    or several sharing the study explore the same random start-up points, and a process that
    resumes a study draws new points for its new trial numbers instead of repeating the first
    ones. With a shared study (`shared`) the constant liar keeps workers from proposing the
    points other workers are still running."""
    import optuna

    class TrialSeededTPESampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._per_trial: dict[int, optuna.samplers.TPESampler] = {}

        def _tpe(self, trial) -> optuna.samplers.TPESampler:
            if trial.number not in self._per_trial:
                with warnings.catch_warnings():  # constant_liar is marked experimental
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    self._per_trial[trial.number] = optuna.samplers.TPESampler(
                        seed=seed + trial.number, constant_liar=shared)
            return self._per_trial[trial.number]

        def infer_relative_search_space(self, study, trial):
            return self._tpe(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._tpe(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial) -> None:
            self._tpe(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values) -> None:
            self._tpe(trial).after_trial(study, trial, state, values)
            self._per_trial.pop(trial.number, None)

        def reseed_rng(self) -> None:  # the seeds are the trial numbers' by design
            pass

    return TrialSeededTPESampler()

def load_study(settings: TuningSettings, storage, *, study_name: str):
    """Create the study, or load it when the storage holds it already (a resume, or a worker)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = make_pruner(settings.pruner, max_epochs=settings.max_epochs)
    sampler = make_sampler(settings.seed, shared=storage is not None)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=settings.direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    recorded = study.user_attrs.get("objective")
    if recorded and recorded != settings.objective:
        raise TuningConfigError(
            f"study '{study_name}' in {masked(settings.storage_url)} was tuned for {recorded}, "
            f"not {settings.objective}: give another study_name"
        )
    if study.direction.name.lower() != settings.direction:
        raise TuningConfigError(
            f"study '{study_name}' in {masked(settings.storage_url)} is set to {study.direction.name.lower()}, "
            f"but {settings.objective} needs {settings.direction}: give another study_name"
        )
    if not recorded:
        study.set_user_attr("objective", settings.objective)
        study.set_user_attr("settings", {k: v for k, v in asdict(settings).items() if k not in ("storage_url", "tracking_uri")})
    return study

@dataclass
class BudgetState:
    counted: int  # complete + pruned + failed with an error
    running: int
    stale: int  # failed because their process died; not counted

def budget_state(study) -> BudgetState:
    from optuna.trial import TrialState

    counted = running = stale = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            counted += 1
        elif t.state == TrialState.FAIL:
            if ERROR_ATTR in t.user_attrs:
                counted += 1
            else:
                stale += 1
        elif t.state == TrialState.RUNNING:
            running += 1
    return BudgetState(counted, running, stale)

class TrialFailed(Exception):
    """Raised by an objective for a trial that failed; the study records it and goes on."""

def run_trials(
    study,
    objective: Callable,
    *,
    n_trials: int,
    timeout_seconds: float = 0.0,
    poll_seconds: float = 0.5,
    on_trial: Callable[[], None] | None = None,
) -> int:
    """Run trials until the study holds `n_trials` counted trials; return how many ran here.

    Completed, pruned and failed trials of earlier processes count; trials RUNNING elsewhere are
    waited for (they finish, or turn stale and are replaced); stale trials do not count.
    """
    import optuna

    deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
    ran = 0
    waited_since = None
    reported = None
    while True:
        with warnings.catch_warnings():  # fail_stale_trials is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats (in memory)
        state = budget_state(study)
        if state.counted != reported:
            progress.report("tuning trials", min(state.counted, n_trials), n_trials)
            reported = state.counted
        if state.counted >= n_trials:
            break
        if deadline is not None and time.monotonic() >= deadline:
            log.info("tuning: the timeout of %.0fs is reached after %d trials here", timeout_seconds, ran)
            break
        if state.counted + state.running >= n_trials:
            if waited_since is None:
                waited_since = time.monotonic()
                log.info("tuning: %d trials left, all running in other workers; waiting for them", n_trials - state.counted)
            time.sleep(poll_seconds)
            continue
        waited_since = None
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        ran += 1
        if on_trial is not None:
            on_trial()
    return ran

def trial_summaries(study) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "epochs": t.user_attrs.get("epochs"),
            "best_epoch": t.user_attrs.get("best_epoch"),
            "worker": t.user_attrs.get(WORKER_ATTR),
            "error": t.user_attrs.get(ERROR_ATTR),
        }
        for t in study.get_trials(deepcopy=False)
    ]

def state_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts

def configure_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools (before TensorFlow runs anything).

    0 takes the container's CPU limit (cgroup v2 `cpu.max`) when there is one, else leaves
    TensorFlow's default (every core of the machine)."""
    if threads <= 0:
        try:
            quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
            threads = 0 if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            threads = 0
    if threads > 0:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
