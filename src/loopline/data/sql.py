"""A SQL table or query as a dataset, through SQLAlchemy: `postgresql://host:5432/db?table=sales.tx`
or `...?query=SELECT ...` (any SQLAlchemy dialect with its driver installed; PostgreSQL goes through
psycopg 3).

Credentials never appear in the URL (it is a pipeline parameter, so it lands in the compiled YAML
and the run's record): the driver reads PGPASSWORD and the other libpq variables itself, and
`password_env=VAR` names a variable that holds the password (in a cluster: a Kubernetes secret
mapped to an environment variable). A literal password in the URL is refused.

A partition filter becomes a WHERE clause with bound parameters on the table or query, so the
database selects the rows. The rows are read in chunks; each chunk feeds the content digest.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import parse_qsl, urlencode

from loopline.core.errors import DataError, one_line, redact
from loopline.data.sources import Read, filter_clauses

CONNECT_TIMEOUT_SECONDS = 5
CHUNK_ROWS = 50_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?$")
_OWN_KEYS = ("table", "query", "password_env")


def split_uri(uri: str) -> tuple[str, dict[str, str]]:
    """The SQLAlchemy URL without Loopline's own keys, and those keys (table, query, password_env)."""
    base, _, query = uri.partition("?")  # not urlunsplit: it drops the // of sqlite:///path
    pairs = parse_qsl(query, keep_blank_values=True)
    own = {k: v for k, v in pairs if k in _OWN_KEYS}
    rest = [(k, v) for k, v in pairs if k not in _OWN_KEYS]
    return base + (f"?{urlencode(rest)}" if rest else ""), own


def describe(uri: str) -> str:
    """The source as the user may see it: no password, no query text."""
    url, own = split_uri(uri)
    name = f"table {own['table']}" if own.get("table") else "a query"
    return f"{name} of {redact(url)}"


def _engine(uri: str):
    """The SQLAlchemy engine of `uri`, its password from the environment, and where it connects."""
    import sqlalchemy

    url_text, own = split_uri(uri)
    if bool(own.get("table")) == bool(own.get("query")):
        raise DataError(f"data_uri {redact(url_text)}: give exactly one of ?table=NAME or ?query=SELECT...")
    try:
        url = sqlalchemy.engine.make_url(url_text)
    except sqlalchemy.exc.ArgumentError as exc:
        raise DataError(f"data_uri: not a database URL: {one_line(exc, 200)}") from exc
    if url.password:
        raise DataError(f"data_uri {redact(url_text)}: the URL holds a password; put it in the environment "
                        "(PGPASSWORD, or ?password_env=VARIABLE naming the variable that holds it), never in the URL")
    if own.get("password_env"):
        variable = own["password_env"]
        if variable not in os.environ:
            raise DataError(f"data_uri: password_env names {variable}, which is not set in this environment")
        url = url.set(password=os.environ[variable])
    if url.get_backend_name() == "postgresql" and "+" not in url.drivername:
        url = url.set(drivername="postgresql+psycopg")
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if url.get_backend_name() == "postgresql" else {}
    where = f"{url.host or 'localhost'}:{url.port or _default_port(url.get_backend_name())}" if url.host or \
        url.get_backend_name() != "sqlite" else (url.database or "memory")
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args, pool_pre_ping=False)
    except Exception as exc:  # an uninstalled driver, a bad option
        raise DataError(f"data_uri {redact(url_text)}: {one_line(exc, 200)}") from exc
    return engine, own, where


def _default_port(backend: str) -> str:
    return {"postgresql": "5432", "mysql": "3306", "mssql": "1433", "oracle": "1521"}.get(backend, "?")


def _selection(own: dict, partition_filter: str, columns: list[str] | None):
    """The SELECT of the source (table or query), with the filter as bound parameters."""
    import sqlalchemy

    if own.get("table"):
        name = own["table"]
        if not _IDENTIFIER.match(name):
            raise DataError(f"data_uri: table {name!r} is not a table name (NAME or SCHEMA.NAME)")
        schema, _, table = name.rpartition(".")
        source = sqlalchemy.table(table, schema=schema or None)
        base = sqlalchemy.select(sqlalchemy.text("*")).select_from(source)
    else:
        base = sqlalchemy.text(own["query"].strip().rstrip(";"))
    subquery = (base.subquery("loopline_source") if own.get("table")
                else base.columns().subquery("loopline_source"))
    statement = sqlalchemy.select(sqlalchemy.text("*")).select_from(subquery)
    if partition_filter.strip() and columns is not None:
        for index, (column, op, value) in enumerate(filter_clauses(partition_filter)):
            if column not in columns:
                raise DataError(f"partition_filter: column '{column}' not found in the database source "
                                f"(columns: {', '.join(columns)})")
            parameter = sqlalchemy.bindparam(f"p{index}", _number_or_text(value))
            statement = statement.where(sqlalchemy.literal_column(_quoted(column)).op(_sql_op(op))(parameter))
    return statement


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _sql_op(op: str) -> str:
    return {"==": "=", "!=": "<>"}.get(op, op)


def _number_or_text(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value  # psycopg sends text untyped, so the database casts it to the column's type


def read(uri: str, partition_filter: str = "") -> Read:
    """The rows of the table or query (under the filter), with their lineage and digest."""
    import pandas as pd
    import sqlalchemy

    engine, own, where = _engine(uri)
    shown = describe(uri)
    try:
        connection = engine.connect()
    except sqlalchemy.exc.DBAPIError as exc:
        raise DataError(f"cannot reach the database at {where} ({shown}): {_message(exc)}") from exc
    except Exception as exc:
        raise DataError(f"cannot reach the database at {where} ({shown}): {one_line(exc, 300)}") from exc
    try:
        with connection:
            try:
                probe = connection.execute(_selection(own, "", None).limit(0))
                columns = list(probe.keys())
                probe.close()
                statement = _selection(own, partition_filter, columns)
                digest, chunks, rows = hashlib.sha256(), [], 0
                streaming = connection.execution_options(stream_results=True)
                for chunk in pd.read_sql(statement, streaming, chunksize=CHUNK_ROWS):
                    digest.update(chunk.to_csv(index=False, header=not chunks).encode())
                    chunks.append(chunk)
                    rows += len(chunk)
            except sqlalchemy.exc.DBAPIError as exc:
                raise DataError(f"the database at {where} refused {shown}: {_message(exc)}") from exc
    finally:
        engine.dispose()
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=columns)
    lineage = {"kind": "sql", "uri": redact(split_uri(uri)[0]), "rows": rows, "sha256": digest.hexdigest()}
    lineage.update({k: own[k] for k in ("table", "query") if own.get(k)})
    if partition_filter.strip():
        lineage["filter"] = partition_filter.strip()
    return Read(frame, lineage)


def _message(exc) -> str:
    """The database's own message, first line, without credentials."""
    original = getattr(exc, "orig", None) or exc
    return one_line(original, 300)
