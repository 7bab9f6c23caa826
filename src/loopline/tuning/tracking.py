"""A study in MLflow: one parent run per study (found again by the study's name, so workers and
resumed processes share it), a nested run per trial, the final model with its signature."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from typing import Any

from loopline.core import mlflow_store
from loopline.core.logs import quiet_libraries
from loopline.tuning.storage import masked, sqlite_init_lock
from loopline.tuning.study import TAG_STUDY, TUNING_EXPERIMENT, TuningSettings

_MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}

class MlflowTracker:
    """Logs a study to MLflow: one parent run (found again by the study's name, so workers and
    resumed processes share it) and one nested run per trial."""

    def __init__(self, tracking_uri: str, study_name: str, settings: TuningSettings):
        quiet_libraries()
        self.tracking_uri = tracking_uri
        self.study_name = study_name
        # workers starting together on a new SQLite store would race to create its tables
        with sqlite_init_lock(tracking_uri):
            self.client = mlflow_store.connect(tracking_uri)
            self.experiment_id = mlflow_store.ensure_experiment(self.client, tracking_uri, TUNING_EXPERIMENT)
            self.parent_id = self._parent(settings)

    def _find_parents(self) -> list:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG_STUDY}` = '{self.study_name}'",
            order_by=["attributes.start_time ASC"],
        )
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _parent(self, settings: TuningSettings) -> str:
        found = self._find_parents()
        if found:
            return found[0].info.run_id
        run = self.client.create_run(
            self.experiment_id, run_name=self.study_name,
            tags={TAG_STUDY: self.study_name, "loopline.storage": masked(settings.storage_url) or "in-memory"},
        )
        params = {k: v for k, v in asdict(settings).items() if k not in ("tracking_uri", "search_space")}
        params["storage_url"] = masked(settings.storage_url)
        params["search_space"] = json.dumps(settings.search_space, sort_keys=True)
        from mlflow.entities import Param

        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])
        # two workers starting together may both have created one: all keep the oldest
        found = self._find_parents()
        chosen = found[0].info.run_id if found else run.info.run_id
        if chosen != run.info.run_id:
            self.client.delete_run(run.info.run_id)
        return chosen

    def log_trial(self, trial, *, state: str, value: float | None, metric: str, curves: dict[str, list[float]],
                  error: str = "") -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        run = self.client.create_run(
            self.experiment_id, run_name=f"trial-{trial.number}",
            tags={"mlflow.parentRunId": self.parent_id, TAG_STUDY: self.study_name,
                  "loopline.trial": str(trial.number), "loopline.trial_state": state.lower(),
                  **({"loopline.error": error[:500]} if error else {})},
        )
        metrics = [Metric(name, float(v), now, step) for name, values in curves.items()
                   for step, v in enumerate(values) if v is not None and math.isfinite(v)]
        if value is not None and math.isfinite(value):
            metrics.append(Metric(f"best_{metric}", float(value), now, 0))
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        for start in range(0, max(len(metrics), 1), 900):  # MLflow takes at most 1000 per batch
            self.client.log_batch(run.info.run_id, metrics=metrics[start:start + 900],
                                  params=params if start == 0 else [])
        self.client.set_terminated(run.info.run_id, status=_MLFLOW_STATUS.get(state, "FAILED"))

    def log_final(self, *, model_dir: str, features: dict[str, str], classes: list[str], best: dict[str, Any],
                  curves: dict[str, list[float]], input_example=None, report_path: str | None = None) -> str:
        """The final model (pyfunc, with signature and input example) and its curves on the parent run."""
        import mlflow
        from mlflow.entities import Metric


        now = int(time.time() * 1000)
        metrics = [Metric(f"final_{name}", float(v), now, step) for name, values in curves.items()
                   for step, v in enumerate(values) if math.isfinite(v)]
        metrics.append(Metric(f"best_{best['metric']}", float(best["value"]), now, 0))
        self.client.log_batch(self.parent_id, metrics=metrics[:900])
        self.client.set_tag(self.parent_id, "loopline.best_trial", str(best["trial"]))
        self.client.log_dict(self.parent_id, best, "best_params.json")
        if report_path:
            self.client.log_artifact(self.parent_id, report_path)
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=self.parent_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=mlflow_store.pyfunc_code_path(),
                artifacts={mlflow_store.SAVED_MODEL_ARTIFACT: str(model_dir)},
                signature=mlflow_store.model_signature(features, classes),
                input_example=input_example,
                pip_requirements=mlflow_store.MODEL_REQUIREMENTS,
            )
        self.client.set_terminated(self.parent_id, status="FINISHED")
        return info.model_uri
