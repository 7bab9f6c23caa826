"""Reading tabular data (CSV and Parquet, from paths and URIs; folders, prefixes and globs of
Parquet files and SQL tables through `loopline.data.sources`) and deterministic splits.

Splits are written as Parquet files that carry their dataset spec in the file's key-value
metadata, so every downstream step (and every other team's step) reads a self-describing file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.core import rules
from loopline.core.errors import DataError
from loopline.data import sources
from loopline.data import sql as sources_sql
from loopline.data.checks import build_spec, check_column_names, check_flat_columns, check_rows
from loopline.data.plain_types import plain_frame
from loopline.data.spec import KINDS, SPEC_KEY, DatasetSpec, conform

log = logging.getLogger(__name__)


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


def read_dataset(uri: str, partition_filter: str = "") -> tuple[pd.DataFrame, dict]:
    """Read any source `read_table` reads, with its lineage (`loopline.data.sources`): the files with
    their sizes and ETags, or the SQL source and query, and the content digest."""
    if partition_filter.strip() or sources.is_dataset(uri):
        if not sources.is_sql(uri) and not sources.is_dataset(uri) and not _is_parquet(uri):
            raise DataError(f"partition_filter applies to Parquet datasets and SQL sources, not to {uri}")
        if sources.is_sql(uri):
            read = sources_sql.read(uri, partition_filter)
        else:
            read = sources.read_parquet_dataset(uri, partition_filter)
        check_column_names([str(c) for c in read.frame.columns], uri)
        if read.frame.empty:
            raise DataError(f"data source has no rows: {uri}" + (f" under partition_filter {partition_filter!r}"
                                                                  if partition_filter.strip() else ""))
        check_flat_columns(read.frame, uri)
        return plain_frame(read.frame), read.lineage
    df = read_table(uri)
    return df, sources.file_lineage(uri, file_sha256(uri))


def read_table(uri: str, partition_filter: str = "") -> pd.DataFrame:
    """Read a CSV or Parquet file, a folder, prefix or glob of Parquet files, or a SQL table or
    query (see `loopline.data.sources`); raise DataError naming the file or source if unusable.
    pandas' nullable and categorical columns come back as their plain kinds (`plain_types`)."""
    if partition_filter.strip() or sources.is_dataset(uri):
        return read_dataset(uri, partition_filter)[0]
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
    return plain_frame(df)


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


@dataclass(frozen=True, kw_only=True)
class SplitSettings:
    """How `load_data` reads and splits a dataset: the one declaration of these settings and
    their defaults. Checked on construction."""

    feature_kinds: dict[str, str] = field(default_factory=dict)  # column -> numeric / categorical
    ignore_columns: list[str] = field(default_factory=list)  # neither features nor the target
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.15
    seed: int = 42
    partition_filter: str = ""  # e.g. "dt >= 2026-11-01": rows of a Parquet dataset or SQL source

    def __post_init__(self) -> None:
        """The checks of the split settings, each a one-line DataError."""
        check_feature_kinds(self.feature_kinds)
        rules.names("ignore_columns", self.ignore_columns, DataError)
        rules.number("seed", self.seed, DataError, low=0, whole=True)
        for name in ("validation_fraction", "holdout_fraction"):
            value = rules.number(name, getattr(self, name), DataError)
            if not 0.0 < value < 0.5:
                raise DataError(f"{name} must be between 0 and 0.5, got {value}")
        if self.partition_filter.strip():
            sources.filter_clauses(self.partition_filter)  # its syntax; its columns when the data is read


def check_feature_kinds(feature_kinds: dict[str, str], name: str = "feature_kinds") -> None:
    """A mapping of column names to a kind Loopline knows (numeric or categorical)."""
    for column, kind in rules.mapping(name, feature_kinds, DataError).items():
        if kind not in KINDS:
            raise DataError(f"{name}: column '{column}' has the unknown kind {kind!r} (use one of {', '.join(KINDS)})")


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
    check_spec=None,
) -> LoadResult:
    """Read `data_uri`, apply the dataset spec and write the three splits; `check_spec(spec)`,
    when given, judges the spec before anything is written."""
    raw, lineage = read_dataset(data_uri, settings.partition_filter)
    spec = build_spec(
        raw,
        target=target,
        feature_kinds=settings.feature_kinds,
        ignore_columns=settings.ignore_columns,
        source_uri=data_uri,
        source_sha256=lineage["sha256"],
    )
    spec.source_lineage = lineage
    check_rows(raw, spec, where=data_uri)
    if check_spec is not None:
        check_spec(spec)
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


def check_input(data_uri: str, *, target: str, settings: SplitSettings) -> DatasetSpec:
    """The checks `load_and_split` makes, without writing anything: used before a run starts."""
    raw = read_table(data_uri, settings.partition_filter)
    spec = build_spec(
        raw, target=target, feature_kinds=settings.feature_kinds, ignore_columns=settings.ignore_columns,
        source_uri=data_uri,
    )
    check_rows(raw, spec, where=data_uri)
    split(conform(raw, spec), spec, settings=settings)
    return spec
