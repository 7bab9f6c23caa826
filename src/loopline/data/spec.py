"""The dataset spec: what a dataset means (its target, its features and their kinds, where it came
from), each feature's inferred kind, and the frame conformed to the spec's canonical dtypes.

Splits carry the spec in their Parquet key-value metadata under `SPEC_KEY`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from loopline.core.errors import DataError
from loopline.data.plain_types import plain_series

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)
SPEC_KEY = b"loopline.spec"


@dataclass
class DatasetSpec:
    """What a dataset means: its target, its features and their kinds, and where it came from."""

    target: str
    features: dict[str, str]
    classes: list[str]
    ignored: list[str] = field(default_factory=list)
    source_uri: str = ""
    source_sha256: str = ""
    source_lineage: dict = field(default_factory=dict)  # the files with sizes and ETags, or the query

    @property
    def numeric(self) -> list[str]:
        return [c for c, k in self.features.items() if k == NUMERIC]

    @property
    def categorical(self) -> list[str]:
        return [c for c, k in self.features.items() if k == CATEGORICAL]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetSpec:
        return cls(**json.loads(text))


def infer_kind(series: pd.Series) -> str:
    """Numeric for numbers (not booleans); categorical for everything else."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return CATEGORICAL
    return NUMERIC


def conform(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Keep the spec's columns with canonical dtypes: float for numeric, string for categorical.

    Missing categorical values stay missing (None); the model maps them to their own token.
    pandas' nullable and categorical columns are read as their plain kinds first.
    """
    out = pd.DataFrame(index=df.index)
    for name, kind in spec.features.items():
        if name not in df.columns:
            raise DataError(f"column '{name}' is missing from the data")
        col = plain_series(df[name])
        if kind == NUMERIC:
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            out[name] = col.where(col.isna(), col.astype(str)).astype("object")
    if spec.target in df.columns:
        target = plain_series(df[spec.target])
        out[spec.target] = target.where(target.isna(), target.astype(str)).astype("object")
    return out
