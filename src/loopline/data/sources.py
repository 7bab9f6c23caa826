"""Where a dataset comes from: a folder, an object-store prefix (s3://, gs://) or a glob of Parquet
files, Hive partitions included (`dt=2026-12-01/part-0001.parquet`: the keys become columns), or a
SQL table or query (`sources_sql`; `data.read_dataset` chooses). A partition filter
(`dt >= 2026-11-01`) is pushed down with pyarrow.dataset: the files of other partitions are
chosen out by their paths and never opened.

Object stores are read through fsspec (s3fs, gcsfs: the clients that honour AWS_ENDPOINT_URL and
STORAGE_EMULATOR_HOST), never through pyarrow's own S3 and GCS clients. Each file is streamed once:
its bytes feed the content digest as they arrive and are parsed from the same buffer.

Every read returns the frame and its lineage: the files with their sizes and ETags (or the SQL
source and query), the filter, and the content digest.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
from dataclasses import dataclass, field

from loopline.core.errors import DataError, one_line

PARQUET_SUFFIXES = (".parquet", ".pq")
SQL_DIALECTS = ("postgresql", "postgres", "mysql", "mariadb", "sqlite", "mssql", "oracle")
_CHUNK = 1 << 20
_CLAUSE = re.compile(r"^\s*(?P<column>[A-Za-z_][\w.]*)\s*(?P<op>==|=|!=|<>|>=|<=|>|<)\s*(?P<value>[^=<>!\s].*?)\s*$")
_OPS = {"=": "==", "<>": "!="}


@dataclass
class Read:
    """A dataset read into memory, with where it came from."""

    frame: object  # pandas.DataFrame
    lineage: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.lineage.get("sha256", "")


def is_sql(uri: str) -> bool:
    """A SQLAlchemy URL (`postgresql://host/db?table=t`, `postgresql+psycopg://...?query=...`)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return scheme.split("+", 1)[0] in SQL_DIALECTS


def is_glob(uri: str) -> bool:
    return not is_sql(uri) and any(ch in uri for ch in "*[")


def _strip_file_scheme(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _filesystem(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(_strip_file_scheme(uri))


def is_dataset(uri: str) -> bool:
    """A source of more than one file, or a database: a SQL URL, a glob, a folder or a prefix."""
    if is_sql(uri) or is_glob(uri):
        return True
    path = _strip_file_scheme(uri)
    if "://" not in path:
        import os

        return os.path.isdir(path)
    if path.endswith("/"):
        return True
    fs, inner = _filesystem(path)
    try:
        return bool(fs.isdir(inner))
    except Exception:  # unreachable store: reading it as a file reports why
        return False


# ---------------------------------------------------------------------------------------------
# Parquet files: a folder, a prefix, a glob, or one file


def _listing(uri: str) -> tuple[object, str, dict[str, dict]]:
    """The filesystem, the base folder (partition keys are read below it) and path -> info of
    every Parquet file of the source; hidden and `_`-prefixed files (`_SUCCESS`) are skipped."""
    fs, path = _filesystem(uri)
    try:
        if is_glob(uri):
            found = fs.glob(path, detail=True)
            base = path[: min(path.index(ch) for ch in "*[" if ch in path)].rsplit("/", 1)[0]
        elif fs.isfile(path):
            found = {path: fs.info(path)}
            base = path.rsplit("/", 1)[0]
        else:
            found = fs.find(path, detail=True)
            base = path.rstrip("/")
    except FileNotFoundError:
        found, base = {}, path
    except Exception as exc:
        raise DataError(f"cannot list {uri}: {one_line(exc, 300)}") from exc
    files = {}
    for name, info in sorted(found.items()):
        leaf = name.rsplit("/", 1)[-1]
        if info.get("type", "file") != "file" or leaf.startswith((".", "_")):
            continue
        if not leaf.lower().endswith(PARQUET_SUFFIXES):
            continue
        files[name] = info
    if not files:
        raise DataError(f"no Parquet files match {uri} (a folder, prefix or glob of *.parquet files)")
    return fs, base, files


def _etag(info: dict) -> str:
    for key in ("ETag", "etag", "md5Hash", "md5"):
        if info.get(key):
            return str(info[key]).strip('"')
    return ""


def parse_filter(text: str, schema, *, where: str):
    """`dt >= 2026-11-01 and region = eu` as a pyarrow.dataset expression; each value is taken in
    its column's type. A column that the source lacks is a one-line DataError."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    expression = None
    for clause in filter_clauses(text):
        column, op, value = clause
        if column not in schema.names:
            raise DataError(f"partition_filter: column '{column}' not found in {where} "
                            f"(columns: {', '.join(schema.names)})")
        typed = typed_value(value, schema.field(column).type, column=column)
        part = {"==": pc.equal, "!=": pc.not_equal, ">=": pc.greater_equal, "<=": pc.less_equal,
                ">": pc.greater, "<": pc.less}[op](ds.field(column), typed)
        expression = part if expression is None else expression & part
    return expression


def filter_clauses(text: str) -> list[tuple[str, str, str]]:
    """(column, operator, value) of each `and`-joined clause of a filter; a clause that is not
    `column op value` is a one-line DataError."""
    clauses = []
    for raw in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(raw)
        if not match:
            raise DataError(f"partition_filter: cannot read {raw.strip()!r}; write clauses such as "
                            "'dt >= 2026-11-01' joined by 'and' (operators: = != < <= > >=)")
        value = match["value"]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        clauses.append((match["column"], _OPS.get(match["op"], match["op"]), value))
    return clauses


def typed_value(value: str, dtype, *, column: str):
    """`value` as a Python value of the Arrow type `dtype`."""
    import pyarrow as pa

    try:
        if pa.types.is_integer(dtype):
            return int(value)
        if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
            return float(value)
        if pa.types.is_date(dtype):
            return datetime.date.fromisoformat(value)
        if pa.types.is_timestamp(dtype):
            return pa.scalar(datetime.datetime.fromisoformat(value), type=dtype)
        if pa.types.is_boolean(dtype):
            return {"true": True, "false": False}[value.lower()]
    except (ValueError, KeyError) as exc:
        raise DataError(f"partition_filter: {value!r} is not a value of column '{column}' ({dtype})") from exc
    return value


def hive_keys(path: str, base: str) -> dict[str, str | None]:
    """The Hive partition keys of a file below `base`: `dt=2026-12-01/part-0.parquet` -> {dt: ...}."""
    from urllib.parse import unquote

    keys: dict[str, str | None] = {}
    for segment in _relative(path, base).split("/")[:-1]:
        name, sep, value = segment.partition("=")
        if sep and name:
            keys[unquote(name)] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return keys


def partition_schema(all_keys):
    """The partition columns and their types: whole numbers are int64, everything else text."""
    import pyarrow as pa

    names: dict[str, bool] = {}
    for keys in all_keys:
        for name, value in keys.items():
            whole = value is None or re.fullmatch(r"-?\d{1,18}", value) is not None
            names[name] = names.get(name, True) and whole
    return pa.schema([pa.field(n, pa.int64() if whole else pa.string()) for n, whole in names.items()])


def _partition_value(value, dtype):
    return None if value is None else (int(value) if dtype == "int64" else value)


def read_parquet_dataset(uri: str, partition_filter: str = "") -> Read:
    """Every Parquet file of `uri` (partition keys as columns) in one table. The clauses of the
    filter on partition keys select the files with pyarrow.dataset from their paths alone, so the
    files of other partitions are never opened; the other clauses filter the rows read. Parts whose
    schemas differ are a DataError naming the first file that differs and the column."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs, base, files = _listing(uri)
    keys = {path: hive_keys(path, base) for path in files}
    partitions = partition_schema(keys.values())
    clauses = filter_clauses(partition_filter) if partition_filter.strip() else []
    selected = list(files)
    on_keys = " and ".join(f"{c} {op} {v!r}" for c, op, v in clauses if c in partitions.names)
    if on_keys:
        # a dataset of the partition columns only: its fragments are chosen from the paths, unread
        by_path = ds.dataset(selected, schema=partitions, format="parquet", partition_base_dir=base,
                             filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(fs)),
                             partitioning=ds.partitioning(partitions, flavor="hive"))
        chosen = {f.path for f in by_path.get_fragments(filter=parse_filter(on_keys, partitions, where=uri))}
        selected = [path for path in selected if path in chosen]
    tables, listed, first, expression = [], [], None, None
    file_digests = hashlib.sha256()
    for path in selected:
        table, sha = _read_file(fs, path, uri)
        for field_ in partitions:
            if field_.name not in table.schema.names:
                value = _partition_value(keys[path].get(field_.name), str(field_.type))
                table = table.append_column(field_, pa.array([value] * table.num_rows, field_.type))
        if first is None:
            first = (path, table.schema)
            if clauses:
                expression = parse_filter(partition_filter, table.schema, where=uri)
        table = _conform_schema(first, path, table, base)
        if expression is not None:
            table = table.filter(expression)
        tables.append(table)
        info = files[path]
        entry = {"path": _relative(path, base), "size": int(info.get("size") or 0)}
        if _etag(info):
            entry["etag"] = _etag(info)
        listed.append(entry)
        file_digests.update(f"{entry['path']}\t{entry['size']}\t{sha}\n".encode())
    if not tables:
        raise DataError(f"partition_filter {partition_filter!r} selects no files of {uri} "
                        f"({len(files)} files, none in a matching partition)")
    frame = pa.concat_tables(tables).to_pandas()
    file_digests.update(f"filter\t{partition_filter.strip()}\n".encode())
    lineage = {"kind": "parquet", "uri": uri, "base": _display_base(uri, base), "files": listed,
               "file_count": len(listed), "total_bytes": sum(e["size"] for e in listed),
               "sha256": file_digests.hexdigest()}
    if partition_filter.strip():
        lineage["filter"] = partition_filter.strip()
    return Read(frame, lineage)


def _read_file(fs, path: str, uri: str):
    """One Parquet file, streamed once: its bytes feed the digest as they arrive, then are parsed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    digest, buffer = hashlib.sha256(), io.BytesIO()
    try:
        with fs.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
                buffer.write(chunk)
        table = pq.read_table(pa.BufferReader(buffer.getvalue()))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {_display(fs, path)} of {uri}: {one_line(exc, 300)}") from exc
    return table, digest.hexdigest()


def _conform_schema(first: tuple[str, object], path: str, table, base: str):
    """`table` with the first file's columns and types. The same columns in another order, and
    text or bytes in their large Arrow forms (as some writers store them), are the same schema;
    any other difference is a DataError naming this file and the column."""
    first_path, first_schema = first
    schema = table.schema
    if schema.equals(first_schema, check_metadata=False):
        return table
    here, there = _relative(path, base), _relative(first_path, base)
    for column in first_schema.names:
        if column not in schema.names:
            raise DataError(f"{here} differs from {there}: it lacks column '{column}'; every part of a "
                            "dataset needs the same columns")
        ours, theirs = schema.field(column).type, first_schema.field(column).type
        if _plain(ours) != _plain(theirs):
            raise DataError(f"{here} differs from {there}: column '{column}' is {ours} there, {theirs} in {there}")
    extra = [c for c in schema.names if c not in first_schema.names]
    if extra:
        raise DataError(f"{here} differs from {there}: it has column '{extra[0]}' that {there} lacks; every part "
                        "of a dataset needs the same columns")
    return table.select(first_schema.names).cast(first_schema)


def _plain(dtype):
    import pyarrow as pa

    return {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}.get(dtype, dtype)


def _relative(path: str, base: str) -> str:
    return path[len(base) + 1 :] if base and path.startswith(base + "/") else path


def _display_base(uri: str, base: str) -> str:
    scheme = uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""
    return scheme + base


def _display(fs, path: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def file_lineage(uri: str, sha256: str) -> dict:
    """The lineage of one file: its size and ETag (where the store keeps one) and its digest."""
    entry: dict = {"path": uri}
    try:
        fs, path = _filesystem(uri)
        info = fs.info(path)
        entry["size"] = int(info.get("size") or 0)
        if _etag(info):
            entry["etag"] = _etag(info)
    except Exception:  # the digest was read already; size and ETag are extras
        pass
    return {"kind": "file", "uri": uri, "files": [entry], "file_count": 1, "total_bytes": entry.get("size", 0),
            "sha256": sha256}
