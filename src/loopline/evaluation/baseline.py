"""The baseline every gate compares with: a logistic regression on the model's own features.

It is fitted on the training split with the preprocessing Loopline's network uses: numeric
columns imputed with their median (plus a missing-value indicator where values are missing)
and standardised, categorical columns one-hot encoded over the training split's values, with
missing and unseen values sharing the all-zeros code (the network's out-of-vocabulary bucket).
A model that cannot beat it is not worth serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopline.core.errors import DataError
from loopline.data.spec import DatasetSpec

log = logging.getLogger(__name__)

NAME = "logistic regression"
# Rows the baseline is fitted on at most (a seeded random sample of a larger training split):
# a logistic regression on more rows changes little and costs seconds per 100k rows.
MAX_ROWS = 200_000
MAX_ITER = 1000


@dataclass
class Baseline:
    """A fitted baseline: raw rows in, probabilities of `spec.classes` (in that order) out."""

    pipeline: object
    spec: DatasetSpec
    rows: int  # training rows it was fitted on

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        fitted = list(self.pipeline.classes_)
        proba = self.pipeline.predict_proba(design_frame(frame, self.spec))
        out = np.zeros((len(frame), len(self.spec.classes)))
        for column, label in enumerate(fitted):
            out[:, label] = proba[:, column]
        return out


def design_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The features as the preprocessing takes them: numbers as floats (NaN for missing),
    categories as text ("" for missing)."""
    missing = [c for c in spec.features if c not in frame.columns]
    if missing:
        raise DataError(f"the data lacks feature column(s) the baseline needs: {', '.join(missing)}")
    out = {}
    for name in spec.numeric:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    for name in spec.categorical:
        col = frame[name]
        out[name] = col.where(col.notna(), "").astype(str)
    return pd.DataFrame(out, index=frame.index)


def _preprocessing(design: pd.DataFrame, spec: DatasetSpec):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    for name in spec.numeric:
        if design[name].notna().sum() == 0:
            raise DataError(f"numeric column '{name}' has no values in the training split")
        numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
        parts.append((f"num_{name}", numeric, [name]))
    for name in spec.categorical:
        values = sorted(v for v in design[name].unique() if v != "")
        # missing ("") and values unseen in training are all zeros, like the network's OOV bucket
        encoder = OneHotEncoder(categories=[values], handle_unknown="ignore")
        parts.append((f"cat_{name}", encoder, [name]))
    return ColumnTransformer(parts, sparse_threshold=0.3)


def fit_baseline(train: pd.DataFrame, spec: DatasetSpec, *, seed: int = 42, max_rows: int = MAX_ROWS) -> Baseline:
    """Fit the logistic regression on the training split (a seeded sample of `max_rows` rows
    when it is larger)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if spec.target not in train.columns:
        raise DataError(f"the training split lacks the target column '{spec.target}'")
    if len(train) > max_rows:
        train = train.sample(n=max_rows, random_state=seed)
    index = {c: i for i, c in enumerate(spec.classes)}
    labels = train[spec.target].astype(str).map(index)
    if labels.isna().any():
        unknown = sorted(set(train[spec.target].astype(str)) - set(index))[:5]
        raise DataError(f"target column '{spec.target}' has classes the dataset spec does not list: {unknown}")
    if labels.nunique() < 2:
        raise DataError(f"the training split holds a single class of '{spec.target}': no baseline can be fitted")
    design = design_frame(train, spec)
    pipeline = make_pipeline(_preprocessing(design, spec), LogisticRegression(max_iter=MAX_ITER))
    pipeline.fit(design, labels.to_numpy(dtype=int))
    log.info("baseline: %s fitted on %d training rows", NAME, len(train))
    return Baseline(pipeline=pipeline, spec=spec, rows=len(train))
