"""pandas' nullable and categorical types read as their plain kinds.

A frame written with pandas' nullable extension types (`Int64`, `Float64`, `boolean`, `string`,
their pyarrow-backed forms) or with `category` columns, and a Parquet file written from one,
comes back with those types. Every step of Loopline reads data through `plain_frame`, so each
column is what reading the same values from a CSV file would give: whole numbers as `int64`
(`float64` with NaN when some are missing), other numbers as `float64`, booleans as `bool`
(objects with NaN when some are missing), text as objects with NaN for missing values, and a
`category` column as its categories' plain kind. Dates and times are left as they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _is_extension(dtype) -> bool:
    return isinstance(dtype, pd.api.extensions.ExtensionDtype)


def _is_datetime(dtype) -> bool:
    types = pd.api.types
    return bool(types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype)
                or isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype)))


def needs_plain(series: pd.Series) -> bool:
    """Whether a column has a nullable or categorical type that `plain_series` changes."""
    dtype = series.dtype
    return _is_extension(dtype) and not _is_datetime(dtype) and not isinstance(dtype, pd.SparseDtype)


def plain_series(series: pd.Series) -> pd.Series:
    """One column with its plain kind (see the module docstring); other columns are returned as
    they are."""
    if not needs_plain(series):
        return series
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = plain_series(pd.Series(dtype.categories))
        codes = series.cat.codes.to_numpy()
        if (codes >= 0).all():
            return pd.Series(categories.to_numpy()[codes], index=series.index, name=series.name,
                             dtype=categories.dtype)
        values = pd.Series(categories.to_numpy(dtype=object)[np.where(codes >= 0, codes, 0)], index=series.index,
                           name=series.name, dtype=object).where(codes >= 0, np.nan)
        return plain_series(values) if values.dtype != object else _settle(values, categories.dtype)
    missing = series.isna().to_numpy()
    types = pd.api.types
    if types.is_bool_dtype(dtype):
        if not missing.any():
            return series.astype(bool)
        return pd.Series(np.where(missing, np.nan, series.to_numpy(dtype=object, na_value=np.nan)),
                         index=series.index, name=series.name, dtype=object)
    if types.is_numeric_dtype(dtype):
        if types.is_integer_dtype(dtype) and not missing.any():
            return series.astype("int64")
        return pd.Series(series.to_numpy(dtype=np.float64, na_value=np.nan), index=series.index, name=series.name)
    return pd.Series(series.to_numpy(dtype=object, na_value=np.nan), index=series.index, name=series.name,
                     dtype=object)


def _settle(values: pd.Series, kind) -> pd.Series:
    """A category column with missing values, as objects: numbers become float64 with NaN."""
    types = pd.api.types
    if types.is_numeric_dtype(kind) and not types.is_bool_dtype(kind):
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return values


def plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with every nullable or categorical column in its plain kind (a copy when any
    column changes; the frame itself when none does)."""
    changed = [i for i in range(df.shape[1]) if needs_plain(df.iloc[:, i])]
    if not changed:
        return df
    out = df.copy()
    for i in changed:
        out.isetitem(i, plain_series(df.iloc[:, i]))
    return out
