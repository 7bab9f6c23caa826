"""The `model_quality` benchmark: Loopline's tuned model beside scikit-learn's logistic
regression and HistGradientBoosting, on the same split of the same data.

Datasets: the demo transactions (6,000 rows, a few % positives, categoricals and missing
values) and tables scikit-learn ships (no download): breast cancer (binary) and wine (3
classes). Each is split by Loopline (train / validation / holdout, stratified, seeded);
Loopline tunes and trains with the training pipeline's defaults; the scikit-learn models are
fitted on train + validation, as Loopline's final model is; all are scored on the holdout.
Accuracy is each model's reported class: Loopline's decision threshold (binary), the others'
arg-max. Goal: never below the logistic regression (ROC AUC within 0.005, accuracy within
0.02), and within 0.01 ROC AUC of gradient boosting.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.data import checks as input_checks
from loopline.data import demo as demo_data
from loopline.data import spec as dataset_spec
from loopline.data import tables as data
from loopline.evaluation import baseline
from loopline.evaluation import metrics as holdout_metrics
from loopline.model.contract import ServingModel, encode_labels
from loopline.model.decision import stored_threshold
from loopline.tuning.study import TuningSettings
from loopline.tuning.training import tune_and_train

log = logging.getLogger(__name__)

AUC_BELOW_LR, ACCURACY_BELOW_LR, AUC_BELOW_HISTGB = 0.005, 0.02, 0.01
N_TRIALS, MAX_EPOCHS = 4, 15  # the training pipeline's defaults


def datasets() -> dict[str, tuple[pd.DataFrame, str, list[str]]]:
    """name -> (frame, target, ignored columns)."""
    from sklearn.datasets import load_breast_cancer, load_wine

    out = {"demo": (demo_data.demo_transactions(6000, seed=7), demo_data.DEMO_TARGET, list(demo_data.DEMO_IGNORE))}
    for name, loader in (("breast_cancer", load_breast_cancer), ("wine", load_wine)):
        bunch = loader(as_frame=True)
        frame = bunch.frame.rename(columns=lambda c: str(c).replace(" ", "_").replace("/", "_"))
        frame["target"] = frame["target"].map(lambda i, names=list(bunch.target_names): str(names[i]))
        out[name] = (frame, "target", [])
    return out


def _histgb(train: pd.DataFrame, spec: dataset_spec.DatasetSpec, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    design = baseline.design_frame(train, spec)
    for name in spec.categorical:
        design[name] = design[name].astype("category")
    model = HistGradientBoostingClassifier(random_state=seed, categorical_features="from_dtype")
    model.fit(design, encode_labels(train, spec))

    def predict(frame: pd.DataFrame) -> np.ndarray:
        rows = baseline.design_frame(frame, spec)
        for name in spec.categorical:
            rows[name] = pd.Categorical(rows[name], categories=design[name].cat.categories)
        proba = np.zeros((len(frame), len(spec.classes)))
        proba[:, model.classes_] = model.predict_proba(rows)
        return proba

    return predict


def _scores(labels: np.ndarray, proba: np.ndarray, classes: list[str], threshold: float | None = None) -> dict:
    metrics = holdout_metrics.evaluate_predictions(labels, proba, classes, threshold=threshold).metrics
    return {k: round(metrics[k], 4) for k in ("roc_auc", "accuracy", "average_precision", "log_loss", "brier")}


def comparison(loopline: dict[str, float], lr: dict[str, float], histgb: dict[str, float]) -> dict[str, Any]:
    """Loopline's holdout scores against the two scikit-learn models', and whether the goal is met."""
    out: dict[str, Any] = {
        "auc_vs_lr": round(loopline["roc_auc"] - lr["roc_auc"], 4),
        "accuracy_vs_lr": round(loopline["accuracy"] - lr["accuracy"], 4),
        "auc_vs_histgb": round(loopline["roc_auc"] - histgb["roc_auc"], 4),
    }
    out["goal_met"] = bool(out["auc_vs_lr"] >= -AUC_BELOW_LR and out["accuracy_vs_lr"] >= -ACCURACY_BELOW_LR
                           and out["auc_vs_histgb"] >= -AUC_BELOW_HISTGB)
    return out


def one_dataset(name: str, frame: pd.DataFrame, target: str, ignore: list[str], *, seed: int = 42) -> dict[str, Any]:
    spec = input_checks.build_spec(frame, target=target, ignore_columns=ignore)
    train, validation, holdout = data.split(dataset_spec.conform(frame, spec), spec, settings=data.SplitSettings(seed=seed))
    labels = encode_labels(holdout, spec)
    both = pd.concat([train, validation], ignore_index=True)
    with tempfile.TemporaryDirectory(prefix="loopline-quality-") as folder:
        started = time.perf_counter()
        result = tune_and_train(train, validation, spec, export_dir=Path(folder) / "model",
                                settings=TuningSettings(n_trials=N_TRIALS, max_epochs=MAX_EPOCHS, seed=seed))
        seconds = time.perf_counter() - started
        model = ServingModel(Path(folder) / "model")
        threshold = stored_threshold(model.metadata)
        loopline_scores = _scores(labels, model.predict_frame(holdout), spec.classes, threshold)
    lr = _scores(labels, baseline.fit_baseline(both, spec, seed=seed).predict_proba(holdout), spec.classes)
    histgb = _scores(labels, _histgb(both, spec, seed)(holdout), spec.classes)
    entry = {
        "rows": len(frame), "classes": len(spec.classes), "holdout_rows": len(holdout),
        "loopline": loopline_scores, "logistic_regression": lr, "histgb": histgb,
        "loopline_threshold": None if threshold is None else round(threshold, 4),
        "loopline_train_seconds": round(seconds, 1), "loopline_params": result.best_params,
        **comparison(loopline_scores, lr, histgb),
    }
    log.info("model_quality %s: %s", name, entry)
    return entry


def bench_model_quality(home: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    found = {name: one_dataset(name, *spec) for name, spec in datasets().items() if not names or name in names}
    return [{"name": "model_quality", "goal": f"ROC AUC >= LR - {AUC_BELOW_LR}, accuracy >= LR - {ACCURACY_BELOW_LR}, "
                                              f"ROC AUC >= HistGB - {AUC_BELOW_HISTGB}",
             "goal_met": all(e["goal_met"] for e in found.values()), **found}]
