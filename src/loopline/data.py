"""Reading tabular data, the dataset spec, deterministic splits and the built-in demo data.

Splits are written as Parquet files that carry their dataset spec in the file's key-value
metadata, so every downstream step (and every other team's step) reads a self-describing file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.errors import DataError

log = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)
SPEC_KEY = b"loopline.spec"
# A numeric-looking column with at most this many distinct integer values is still numeric;
# strings, booleans and pandas categories are categorical.
_MAX_ROWS_SHOWN = 5


@dataclass
class DatasetSpec:
    """What a dataset means: its target, its features and their kinds, and where it came from."""

    target: str
    features: dict[str, str]
    classes: list[str]
    ignored: list[str] = field(default_factory=list)
    source_uri: str = ""
    source_sha256: str = ""

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


def _strip_file_scheme(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _is_parquet(uri: str) -> bool:
    return uri.lower().rsplit("?", 1)[0].endswith((".parquet", ".pq"))


def file_sha256(uri: str) -> str:
    """SHA-256 of a file's bytes (local paths and fsspec URIs)."""
    digest = hashlib.sha256()
    path = _strip_file_scheme(uri)
    if "://" in path:
        import fsspec

        opener = fsspec.open(path, "rb")
    else:
        opener = open(path, "rb")  # noqa: SIM115 - closed by the with below
    with opener as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(uri: str) -> pd.DataFrame:
    """Read a CSV or Parquet file from a path or URI; raise DataError naming the file if unusable."""
    path = _strip_file_scheme(uri)
    if "://" not in path and not Path(path).is_file():
        raise DataError(f"data file not found: {uri}")
    try:
        if _is_parquet(path):
            # URIs go through fsspec (s3fs, gcsfs: the clients the images install, which honour
            # AWS_ENDPOINT_URL and STORAGE_EMULATOR_HOST), not pyarrow's own S3 and GCS clients
            df = pd.read_parquet(path, storage_options={} if "://" in path else None)
        else:
            df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {uri}") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {uri}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {uri}: {first}") from None
    if df.shape[1] == 1 and not _is_parquet(path):
        header = str(df.columns[0])
        for sep in (";", "\t", "|"):
            if sep in header:
                shown = "tab" if sep == "\t" else repr(sep)
                raise DataError(
                    f"cannot read {uri}: its header '{header[:60]}' is one column delimited by {shown}; "
                    "Loopline reads comma-separated CSV"
                )
    check_column_names(_header_names(path, df), uri)
    if df.empty:
        raise DataError(f"data file has no rows: {uri}")
    check_flat_columns(df, uri)
    return df


def _header_names(path: str, df: pd.DataFrame) -> list[str]:
    """The column names as the file spells them. pandas renames a repeated CSV header (`amount`
    becomes `amount.1`) and names an empty one `Unnamed: 3`: the file's own header is read here."""
    if _is_parquet(path):
        try:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names) if "://" not in path else [str(c) for c in df.columns]
        except Exception:  # read_parquet read it already; fall back to what it found
            return [str(c) for c in df.columns]
    import csv

    try:
        if "://" in path:
            import fsspec

            opener = fsspec.open(path, "rt", encoding="utf-8", newline="")
        else:
            opener = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the with below
        with opener as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration):
        return [str(c) for c in df.columns]


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


def infer_kind(series: pd.Series) -> str:
    """Numeric for numbers (not booleans); categorical for everything else."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return CATEGORICAL
    return NUMERIC


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


def conform(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Keep the spec's columns with canonical dtypes: float for numeric, string for categorical.

    Missing categorical values stay missing (None); the model maps them to their own token.
    """
    out = pd.DataFrame(index=df.index)
    for name, kind in spec.features.items():
        if name not in df.columns:
            raise DataError(f"column '{name}' is missing from the data")
        if kind == NUMERIC:
            out[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        else:
            col = df[name]
            out[name] = col.where(col.isna(), col.astype(str)).astype("object")
    if spec.target in df.columns:
        target = df[spec.target]
        out[spec.target] = target.where(target.isna(), target.astype(str)).astype("object")
    return out


@dataclass(frozen=True, kw_only=True)
class SplitSettings:
    """How `load_data` reads and splits a dataset: the one declaration of these settings and
    their defaults. Checked on construction."""

    feature_kinds: dict[str, str] = field(default_factory=dict)  # column -> numeric / categorical
    ignore_columns: list[str] = field(default_factory=list)  # neither features nor the target
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.15
    seed: int = 42

    def __post_init__(self) -> None:
        """The checks of the split settings, each a one-line DataError."""
        for name in ("validation_fraction", "holdout_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise DataError(f"{name} must be between 0 and 0.5, got {value}")


def split(df: pd.DataFrame, spec: DatasetSpec, *, settings: SplitSettings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Deterministic stratified split into train / validation / holdout."""
    validation_fraction, holdout_fraction = settings.validation_fraction, settings.holdout_fraction
    df = df[df[spec.target].notna()].reset_index(drop=True)
    rng = np.random.default_rng(settings.seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "holdout": []}
    for label in sorted(df[spec.target].unique()):
        idx = np.flatnonzero(df[spec.target].to_numpy() == label)
        idx = idx[rng.permutation(len(idx))]
        n_hold = int(round(len(idx) * holdout_fraction))
        n_val = int(round(len(idx) * validation_fraction))
        parts["holdout"].append(idx[:n_hold])
        parts["validation"].append(idx[n_hold : n_hold + n_val])
        parts["train"].append(idx[n_hold + n_val :])
    frames = []
    for name in ("train", "validation", "holdout"):
        rows = np.sort(np.concatenate(parts[name]))
        part = df.iloc[rows].reset_index(drop=True)
        if part[spec.target].nunique() < len(spec.classes):
            raise DataError(
                f"too few rows to split: the {name} split lacks some classes of "
                f"'{spec.target}' ({len(df)} rows in all); provide more data"
            )
        frames.append(part)
    return frames[0], frames[1], frames[2]


def write_split(df: pd.DataFrame, spec: DatasetSpec, path: str | Path) -> None:
    """Write a split as Parquet with the spec in its schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[SPEC_KEY] = spec.to_json().encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), str(path))


def read_split(path: str | Path) -> tuple[pd.DataFrame, DatasetSpec]:
    """Read a split written by `write_split`, with its spec."""
    import pyarrow.parquet as pq

    path = _strip_file_scheme(str(path))
    if not Path(path).is_file():
        raise DataError(f"dataset file not found: {path}")
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if SPEC_KEY not in meta:
        raise DataError(f"{path} is not a Loopline dataset split (no spec in its metadata)")
    return table.to_pandas(), DatasetSpec.from_json(meta[SPEC_KEY])


@dataclass
class LoadResult:
    spec: DatasetSpec
    rows: dict[str, int]


def load_and_split(
    data_uri: str,
    *,
    target: str,
    settings: SplitSettings,
    train_path: str | Path,
    validation_path: str | Path,
    holdout_path: str | Path,
) -> LoadResult:
    """Read `data_uri`, apply the dataset spec and write the three splits."""
    raw = read_table(data_uri)
    spec = build_spec(
        raw,
        target=target,
        feature_kinds=settings.feature_kinds,
        ignore_columns=settings.ignore_columns,
        source_uri=data_uri,
        source_sha256=file_sha256(data_uri),
    )
    check_rows(raw, spec, where=data_uri)
    data = conform(raw, spec)
    train, validation, holdout = split(data, spec, settings=settings)
    rows = {}
    for name, part, path in (
        ("train", train, train_path),
        ("validation", validation, validation_path),
        ("holdout", holdout, holdout_path),
    ):
        write_split(part, spec, path)
        rows[name] = len(part)
    log.info(
        "loaded %s: %d rows, target '%s' with classes %s, %d numeric and %d categorical features; "
        "split %s",
        data_uri, len(raw), target, spec.classes, len(spec.numeric), len(spec.categorical), rows,
    )
    return LoadResult(spec=spec, rows=rows)


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


def check_input(data_uri: str, *, target: str, feature_kinds=None, ignore_columns=None,
                settings: SplitSettings | None = None) -> DatasetSpec:
    """The checks `load_and_split` makes, without writing anything: used before a run starts."""
    settings = settings or SplitSettings(feature_kinds=dict(feature_kinds or {}), ignore_columns=list(ignore_columns or []))
    raw = read_table(data_uri)
    spec = build_spec(
        raw, target=target, feature_kinds=settings.feature_kinds, ignore_columns=settings.ignore_columns,
        source_uri=data_uri,
    )
    check_rows(raw, spec, where=data_uri)
    split(conform(raw, spec), spec, settings=settings)
    return spec


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


# --------------------------------------------------------------------------------------------
# Built-in demo data: synthetic card transactions with a fraud label.

MERCHANTS = ["grocery", "fuel", "restaurant", "electronics", "travel", "fashion", "gaming", "pharmacy"]
CHANNELS = ["chip", "contactless", "online", "phone"]


def demo_transactions(n_rows: int = 6000, *, shift: float = 0.0, seed: int = 7) -> pd.DataFrame:
    """Seeded synthetic transactions: numeric and categorical columns, some missing values, and
    an `is_fraud` label. `shift` (0 = reference) moves the feature distributions, as a new
    season or a new customer segment would."""
    if n_rows < 100:
        raise DataError(f"n_rows must be at least 100, got {n_rows}")
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(mean=3.6 + 0.8 * shift, sigma=1.0, size=n_rows)
    hour = rng.integers(0, 24, size=n_rows).astype(float)
    hour = np.where(rng.random(n_rows) < 0.4 * shift, rng.integers(0, 6, size=n_rows), hour)
    account_age_days = rng.gamma(shape=2.0, scale=400.0 * (1 - 0.6 * shift), size=n_rows)
    tx_last_24h = rng.poisson(2.0 + 3.0 * shift, size=n_rows).astype(float)
    distance_km = rng.exponential(20.0 * (1 + 3 * shift), size=n_rows)
    merchant_p = np.array([0.25, 0.15, 0.2, 0.1, 0.08, 0.12, 0.05, 0.05])
    merchant_p = merchant_p * (1 - shift) + shift * np.array([0.05, 0.05, 0.1, 0.25, 0.2, 0.1, 0.2, 0.05])
    merchant = rng.choice(MERCHANTS, size=n_rows, p=merchant_p / merchant_p.sum())
    channel_p = np.array([0.4, 0.35, 0.2, 0.05]) * (1 - shift) + shift * np.array([0.1, 0.2, 0.6, 0.1])
    channel = rng.choice(CHANNELS, size=n_rows, p=channel_p / channel_p.sum())

    logit = (
        -5.2
        + 1.5 * (np.log(amount) - 3.6)
        + 1.6 * (hour < 6)
        - 0.002 * account_age_days
        + 0.3 * tx_last_24h
        + 0.02 * np.minimum(distance_km, 150.0)
        + 1.6 * np.isin(merchant, ["electronics", "gaming", "travel"])
        + 1.4 * (channel == "online")
        - 2.6 * shift  # a new segment: more transactions look risky, fewer of them are fraud
    )
    is_fraud = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))

    df = pd.DataFrame(
        {
            "transaction_id": np.arange(n_rows),
            "amount": amount.round(2),
            "hour": hour,
            "account_age_days": account_age_days.round(1),
            "tx_last_24h": tx_last_24h,
            "distance_km": distance_km.round(2),
            "merchant_category": merchant,
            "channel": channel,
            "is_fraud": is_fraud.astype(int),
        }
    )
    # A few missing values, as real exports have.
    for col, frac in (("distance_km", 0.03), ("merchant_category", 0.02)):
        mask = rng.random(n_rows) < frac
        df.loc[mask, col] = None
    return df


DEMO_TARGET = "is_fraud"
DEMO_IGNORE = ["transaction_id"]
