"""The checks of input data, each failing with a one-line DataError that names the file and the
column: the header (every column named, once), flat columns, the target (class labels, not
continuous numbers, dates or ids), the dataset spec built against what the user said, enough
labelled rows, and a newer batch with the training data's columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopline.core.errors import DataError
from loopline.data.spec import KINDS, NUMERIC, DatasetSpec, infer_kind


def check_column_names(names: list[str], uri: str) -> None:
    """Every column has a name, and no name appears twice."""
    for position, name in enumerate(names, start=1):
        if not str(name).strip():
            raise DataError(f"{uri}: column {position} of the header has no name; name every column")
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(
                f"{uri}: column name '{name}' appears twice in the header (columns {seen[name]} and {position}); "
                "give every column its own name"
            )
        seen[name] = position


def check_flat_columns(df: pd.DataFrame, uri: str) -> None:
    """Columns hold single values: numbers, text, booleans or dates, not lists, mappings or bytes."""
    for name in df.columns:
        col = df[name]
        if col.dtype != object:
            continue
        values = col.dropna()
        if values.empty:
            continue
        nested = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray, bytes, bytearray)))
        if nested.any():
            kind = type(values[nested].iloc[0]).__name__
            kind = {"ndarray": "list", "tuple": "list", "dict": "mapping (struct)", "bytearray": "bytes"}.get(kind, kind)
            raise DataError(
                f"{uri}: column '{name}' holds {kind} values; Loopline reads flat columns of numbers, text, "
                "booleans or dates: flatten it, or drop it from the file"
            )


MAX_CLASSES = 100
MIN_ID_ROWS = 50  # fewer rows than this: a column of distinct values is not taken for an id


def is_datetime(series: pd.Series) -> bool:
    return bool(pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series))


def looks_like_id(series: pd.Series) -> bool:
    """Whole numbers or text with a different value in every row (and no missing values)."""
    if len(series) < MIN_ID_ROWS or series.isna().any() or pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_integer_dtype(series) or (series.dtype == object and series.map(type).eq(str).all()):
        return bool(series.is_unique)
    return False


def check_label(labels: pd.Series, target: str, where: str = "") -> None:
    """The target is a classification label: classes, not continuous numbers or dates."""
    if is_datetime(labels):
        raise DataError(f"target column '{target}'{where} holds dates or times, not class labels")
    if pd.api.types.is_float_dtype(labels):
        fractional = labels[(labels % 1) != 0]
        if len(fractional):
            raise DataError(
                f"target column '{target}'{where} holds continuous numbers such as {float(fractional.iloc[0]):g}; "
                "Loopline trains classifiers: give a column of class labels"
            )
    distinct = labels.nunique()
    if distinct > MAX_CLASSES or (distinct > 2 and distinct == len(labels) and len(labels) >= MIN_ID_ROWS):
        raise DataError(
            f"target column '{target}'{where} has {distinct} distinct values in {len(labels)} rows: not a "
            f"classification label (Loopline trains classifiers of up to {MAX_CLASSES} classes)"
        )


def build_spec(
    df: pd.DataFrame,
    *,
    target: str,
    feature_kinds: dict[str, str] | None = None,
    ignore_columns: list[str] | None = None,
    source_uri: str = "",
    source_sha256: str = "",
) -> DatasetSpec:
    """Check the data against what the user said and infer what they did not say."""
    ignore_columns = list(ignore_columns or [])
    feature_kinds = dict(feature_kinds or {})
    where = f" in {source_uri}" if source_uri else ""
    columns = [str(c) for c in df.columns]
    if target not in columns:
        raise DataError(
            f"target column '{target}' not found{where} (columns: {', '.join(columns)})"
        )
    for name in [*feature_kinds, *ignore_columns]:
        if name not in columns:
            raise DataError(f"column '{name}' named in the dataset spec not found{where}")
    for name, kind in feature_kinds.items():
        if kind not in KINDS:
            raise DataError(f"column '{name}': unknown kind '{kind}' (use one of {', '.join(KINDS)})")
    labels = df[target].dropna()
    if labels.empty:
        raise DataError(f"target column '{target}' has no values{where}")
    check_label(labels, target, where)
    classes = sorted({str(v) for v in labels.unique()})
    if len(classes) < 2:
        raise DataError(
            f"target column '{target}' has a single class ({classes[0]!r}){where}: "
            "a classifier needs at least two"
        )
    features: dict[str, str] = {}
    for name in columns:
        if name == target or name in ignore_columns:
            continue
        if is_datetime(df[name]):
            raise DataError(
                f"column '{name}'{where} holds dates or times, which Loopline does not use as features: "
                f"add it to ignore_columns (--ignore {name}), or derive numeric features from it"
            )
        if name not in feature_kinds and looks_like_id(df[name]):
            raise DataError(
                f"column '{name}'{where} looks like an id (a different whole number or text in every row), which a "
                f"model cannot learn from: add it to ignore_columns (--ignore {name}), or declare its kind in "
                "feature_kinds if it is a feature"
            )
        kind = feature_kinds.get(name) or infer_kind(df[name])
        if kind == NUMERIC and not pd.api.types.is_numeric_dtype(df[name]):
            coerced = pd.to_numeric(df[name], errors="coerce")
            bad = df[name][coerced.isna() & df[name].notna()]
            if len(bad):
                raise DataError(
                    f"column '{name}' is declared numeric but holds text such as {bad.iloc[0]!r}"
                )
        features[name] = kind
    if not features:
        raise DataError(f"no feature columns left{where} after the target and ignored columns")
    return DatasetSpec(
        target=target,
        features=features,
        classes=classes,
        ignored=ignore_columns,
        source_uri=source_uri,
        source_sha256=source_sha256,
    )


MIN_TRAINING_ROWS = 50


def check_rows(df: pd.DataFrame, spec: DatasetSpec, *, where: str = "") -> None:
    """Enough labelled rows to train, tune and hold out."""
    labelled = int(df[spec.target].notna().sum())
    if labelled < MIN_TRAINING_ROWS:
        shown = f" in {where}" if where else ""
        raise DataError(
            f"too few rows{shown}: {labelled} rows with a '{spec.target}' label; Loopline needs at least "
            f"{MIN_TRAINING_ROWS} to train, validate and hold out"
        )


def check_same_columns(reference: DatasetSpec, current: DatasetSpec, *, where: str) -> None:
    """A newer batch (`--current`) has the training data's target, features and their kinds."""
    if current.target != reference.target:  # pragma: no cover - both are built with the same target
        raise DataError(f"{where}: target '{current.target}' is not the training target '{reference.target}'")
    missing = [c for c in reference.features if c not in current.features]
    extra = [c for c in current.features if c not in reference.features]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks the training columns {', '.join(missing)}")
        if extra:
            parts.append(f"has columns the training data does not: {', '.join(extra)}")
        raise DataError(f"{where} does not match the training data: it {' and '.join(parts)}")
    changed = [f"{c} ({reference.features[c]} in training, {current.features[c]} here)"
               for c in reference.features if current.features[c] != reference.features[c]]
    if changed:
        raise DataError(f"{where} does not match the training data: column kinds differ: {', '.join(changed)}")

