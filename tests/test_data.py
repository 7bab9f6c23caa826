"""Data: the seeded demo data, reading CSV/Parquet, the dataset spec, and deterministic splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import DataError
from loopline.data.demo import demo_transactions
from loopline.data.spec import CATEGORICAL, NUMERIC
from loopline.data.tables import SplitSettings, load_and_split, read_split

N_ROWS = 2000
SPLITS = ("train", "validation", "holdout")


def _paths(folder: Path) -> dict[str, Path]:
    return {name: folder / f"{name}.parquet" for name in SPLITS}


def _load(uri: Path | str, folder: Path, **kwargs):
    paths = _paths(folder)
    target = kwargs.pop("target", "is_fraud")
    result = load_and_split(
        str(uri),
        target=target,
        settings=SplitSettings(**kwargs),
        train_path=paths["train"],
        validation_path=paths["validation"],
        holdout_path=paths["holdout"],
    )
    return result, paths


def _read_all(paths: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: read_split(path)[0] for name, path in paths.items()}


def _assert_data_error(excinfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, f"error message is not one line: {message!r}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return demo_transactions(N_ROWS, seed=7)


@pytest.fixture(scope="module")
def demo_csv(demo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "transactions.csv"
    demo.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def demo_parquet(demo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("parquet") / "transactions.parquet"
    demo.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module", params=["csv", "parquet"])
def source(request, demo_csv, demo_parquet) -> Path:
    return demo_csv if request.param == "csv" else demo_parquet


@pytest.fixture(scope="module")
def loaded(source, tmp_path_factory):
    """Splits of the demo file with transaction_id kept (as a feature) to check disjointness."""
    result, paths = _load(source, tmp_path_factory.mktemp("splits"), seed=42, feature_kinds={"transaction_id": NUMERIC})
    return result, paths, _read_all(paths)


# ---------------------------------------------------------------------------------------------
# demo_transactions


def test_demo_is_seeded():
    a = demo_transactions(500, seed=11)
    b = demo_transactions(500, seed=11)
    c = demo_transactions(500, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert not np.allclose(a["amount"].to_numpy(), c["amount"].to_numpy())


def test_demo_shift_moves_distributions():
    ref = demo_transactions(3000, seed=7)
    shifted = demo_transactions(3000, shift=1.0, seed=7)
    # lognormal mean moves by 0.8 in log space: the mean amount roughly doubles
    assert shifted["amount"].mean() > 1.5 * ref["amount"].mean()
    assert shifted["amount"].median() > 1.5 * ref["amount"].median()
    # more night-time, more online, younger accounts, more transactions per day
    assert (shifted["hour"] < 6).mean() > (ref["hour"] < 6).mean() + 0.15
    assert (shifted["channel"] == "online").mean() > (ref["channel"] == "online").mean() + 0.2
    assert shifted["account_age_days"].mean() < 0.7 * ref["account_age_days"].mean()
    assert shifted["tx_last_24h"].mean() > ref["tx_last_24h"].mean() + 2


def test_demo_columns_missing_values_and_classes(demo):
    assert len(demo) == N_ROWS
    assert demo["transaction_id"].is_unique
    for col in ("amount", "hour", "account_age_days", "tx_last_24h", "distance_km"):
        assert pd.api.types.is_numeric_dtype(demo[col]), col
    for col in ("merchant_category", "channel"):
        assert not pd.api.types.is_numeric_dtype(demo[col]), col
        assert demo[col].dropna().map(type).eq(str).all(), col
    assert demo["distance_km"].isna().any()
    assert demo["merchant_category"].isna().any()
    assert demo["amount"].notna().all()
    assert set(demo["is_fraud"].unique()) == {0, 1}
    assert 0.005 < demo["is_fraud"].mean() < 0.5


def test_demo_rejects_too_few_rows():
    with pytest.raises(DataError) as excinfo:
        demo_transactions(50)
    _assert_data_error(excinfo, "n_rows", "50")


# ---------------------------------------------------------------------------------------------
# load_and_split on CSV and Parquet


def test_rows_add_up_and_splits_are_disjoint(loaded, demo):
    result, paths, frames = loaded
    assert sum(result.rows.values()) == len(demo)
    for name in SPLITS:
        assert result.rows[name] == len(frames[name]) > 0
    ids = {name: set(frames[name]["transaction_id"].astype(int)) for name in SPLITS}
    assert ids["train"].isdisjoint(ids["validation"])
    assert ids["train"].isdisjoint(ids["holdout"])
    assert ids["validation"].isdisjoint(ids["holdout"])
    assert ids["train"] | ids["validation"] | ids["holdout"] == set(demo["transaction_id"])
    # default fractions 0.15 / 0.15
    assert result.rows["holdout"] == pytest.approx(0.15 * len(demo), abs=2)
    assert result.rows["validation"] == pytest.approx(0.15 * len(demo), abs=2)


def test_splits_are_stratified(loaded, demo):
    _, _, frames = loaded
    overall = demo["is_fraud"].mean()
    for name, frame in frames.items():
        assert set(frame["is_fraud"]) == {"0", "1"}, name
        share = (frame["is_fraud"] == "1").mean()
        assert share == pytest.approx(overall, abs=0.01), name


def test_splits_keep_source_rows_intact(loaded, demo):
    _, _, frames = loaded
    holdout = frames["holdout"].set_index(frames["holdout"]["transaction_id"].astype(int))
    original = demo.set_index("transaction_id").loc[holdout.index]
    np.testing.assert_allclose(holdout["amount"].to_numpy(), original["amount"].to_numpy())
    assert (holdout["channel"] == original["channel"]).all()
    assert (holdout["is_fraud"] == original["is_fraud"].astype(str)).all()


def test_splits_are_deterministic(source, loaded, tmp_path):
    _, _, first = loaded
    _, same_paths = _load(source, tmp_path / "same", seed=42, feature_kinds={"transaction_id": NUMERIC})
    _, other_paths = _load(source, tmp_path / "other", seed=43, feature_kinds={"transaction_id": NUMERIC})
    same, other = _read_all(same_paths), _read_all(other_paths)
    for name in SPLITS:
        pd.testing.assert_frame_equal(first[name], same[name])
    assert set(first["holdout"]["transaction_id"]) != set(other["holdout"]["transaction_id"])
    assert set(first["train"]["transaction_id"]) != set(other["train"]["transaction_id"])


def test_spec_round_trips_through_parquet_metadata(loaded, source):
    result, paths, _ = loaded
    for name in SPLITS:
        frame, spec = read_split(paths[name])
        assert spec == result.spec
        assert spec.target == "is_fraud"
        assert spec.classes == ["0", "1"]
        assert spec.source_uri == str(source)
        assert sorted(frame.columns) == sorted([*spec.features, spec.target])


def test_kinds_are_inferred(loaded):
    result, paths, frames = loaded
    spec = result.spec
    assert spec.features == {
        "transaction_id": NUMERIC,
        "amount": NUMERIC,
        "hour": NUMERIC,
        "account_age_days": NUMERIC,
        "tx_last_24h": NUMERIC,
        "distance_km": NUMERIC,
        "merchant_category": CATEGORICAL,
        "channel": CATEGORICAL,
    }
    assert set(spec.numeric) == {"transaction_id", "amount", "hour", "account_age_days", "tx_last_24h", "distance_km"}
    assert set(spec.categorical) == {"merchant_category", "channel"}
    train = frames["train"]
    for col in spec.numeric:
        assert train[col].dtype == np.float64, col
    # missing values survive the split as missing, categoricals as strings
    assert train["distance_km"].isna().any()
    assert train["merchant_category"].isna().any()
    assert train["merchant_category"].dropna().map(type).eq(str).all()


def test_booleans_and_strings_are_categorical(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "count": rng.integers(0, 5, size=n),
            "flag": rng.random(n) < 0.5,
            "colour": rng.choice(["red", "green"], size=n),
            "label": np.tile(["yes", "no"], n // 2),
        }
    )
    csv = tmp_path / "small.csv"
    df.to_csv(csv, index=False)
    result, _ = _load(csv, tmp_path / "out", target="label")
    assert result.spec.features == {"x": NUMERIC, "count": NUMERIC, "flag": CATEGORICAL, "colour": CATEGORICAL}
    assert result.spec.classes == ["no", "yes"]


def test_feature_kinds_override_and_ignore_columns(demo_csv, tmp_path):
    result, paths = _load(
        demo_csv,
        tmp_path,
        feature_kinds={"hour": CATEGORICAL, "tx_last_24h": NUMERIC},
        ignore_columns=["transaction_id", "account_age_days"],
    )
    spec = result.spec
    assert spec.features["hour"] == CATEGORICAL
    assert spec.features["tx_last_24h"] == NUMERIC
    assert spec.features["amount"] == NUMERIC
    assert "transaction_id" not in spec.features and "account_age_days" not in spec.features
    assert spec.ignored == ["transaction_id", "account_age_days"]
    train, stored = read_split(paths["train"])
    assert stored == spec
    assert "transaction_id" not in train.columns and "account_age_days" not in train.columns
    assert train["hour"].dropna().map(type).eq(str).all()
    assert train["hour"].nunique() == 24


def test_source_sha256_is_the_file_hash(demo_csv, demo_parquet, tmp_path):
    for i, path in enumerate((demo_csv, demo_parquet)):
        result, _ = _load(path, tmp_path / str(i), ignore_columns=["transaction_id"])
        assert result.spec.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert len(result.spec.source_sha256) == 64


def test_fractions_are_honoured(demo_csv, tmp_path):
    result, _ = _load(demo_csv, tmp_path, validation_fraction=0.1, holdout_fraction=0.3, ignore_columns=["transaction_id"])
    assert result.rows["holdout"] == pytest.approx(0.3 * N_ROWS, abs=2)
    assert result.rows["validation"] == pytest.approx(0.1 * N_ROWS, abs=2)
    assert sum(result.rows.values()) == N_ROWS


# ---------------------------------------------------------------------------------------------
# Bad inputs: DataError with a one-line message naming the problem


def _small(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": np.linspace(1.0, 100.0, n),
            "channel": (["chip", "online"] * n)[:n],
            "is_fraud": ([0, 1] * n)[:n],
        }
    )


def test_missing_target_column(demo_csv, tmp_path):
    with pytest.raises(DataError) as excinfo:
        _load(demo_csv, tmp_path, target="is_fraudulent")
    _assert_data_error(excinfo, "'is_fraudulent'", "not found", str(demo_csv))
    assert not (tmp_path / "train.parquet").exists()


def test_missing_target_column_in_parquet(demo_parquet, tmp_path):
    with pytest.raises(DataError) as excinfo:
        _load(demo_parquet, tmp_path, target="label")
    _assert_data_error(excinfo, "'label'", str(demo_parquet))


def test_file_not_found(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError) as excinfo:
        _load(missing, tmp_path)
    _assert_data_error(excinfo, "not found", str(missing))


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as excinfo:
        _load(empty, tmp_path)
    _assert_data_error(excinfo, "empty", str(empty))


def test_header_only_csv(tmp_path):
    header = tmp_path / "header.csv"
    header.write_text("amount,channel,is_fraud\n")
    with pytest.raises(DataError) as excinfo:
        _load(header, tmp_path)
    _assert_data_error(excinfo, "no rows", str(header))


def test_single_class_target(tmp_path):
    path = tmp_path / "one_class.csv"
    _small().assign(is_fraud=0).to_csv(path, index=False)
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path)
    _assert_data_error(excinfo, "'is_fraud'", "single class", str(path))


def test_feature_kinds_names_unknown_column(tmp_path):
    path = tmp_path / "small.csv"
    _small().to_csv(path, index=False)
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path, feature_kinds={"merchant": CATEGORICAL})
    _assert_data_error(excinfo, "'merchant'", "not found")


def test_ignore_columns_names_unknown_column(tmp_path):
    path = tmp_path / "small.csv"
    _small().to_csv(path, index=False)
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path, ignore_columns=["transaction_id"])
    _assert_data_error(excinfo, "'transaction_id'", "not found")


def test_unknown_kind(tmp_path):
    path = tmp_path / "small.csv"
    _small().to_csv(path, index=False)
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path, feature_kinds={"amount": "ordinal"})
    _assert_data_error(excinfo, "'amount'", "'ordinal'", "unknown kind")


def test_numeric_column_holding_text(tmp_path):
    path = tmp_path / "text.csv"
    df = _small()
    df["amount"] = df["amount"].astype(object)
    df.loc[7, "amount"] = "twelve"
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path, feature_kinds={"amount": NUMERIC})
    _assert_data_error(excinfo, "'amount'", "numeric", "twelve")


def test_too_few_rows_to_split(tmp_path):
    path = tmp_path / "six.csv"
    _small(6).to_csv(path, index=False)
    with pytest.raises(DataError) as excinfo:
        _load(path, tmp_path)
    _assert_data_error(excinfo, "too few rows", "'is_fraud'", "6 rows")


def test_bad_fraction(tmp_path, demo_csv):
    with pytest.raises(DataError) as excinfo:
        _load(demo_csv, tmp_path, holdout_fraction=0.6, ignore_columns=["transaction_id"])
    _assert_data_error(excinfo, "holdout_fraction", "0.6")


def test_read_split_without_spec(tmp_path):
    path = tmp_path / "plain.parquet"
    _small().to_parquet(path, index=False)
    with pytest.raises(DataError) as excinfo:
        read_split(path)
    _assert_data_error(excinfo, str(path), "no spec")


def test_read_split_missing_file(tmp_path):
    path = tmp_path / "gone.parquet"
    with pytest.raises(DataError) as excinfo:
        read_split(path)
    _assert_data_error(excinfo, "not found", str(path))


def test_pyarrow_backed_and_nullable_columns_read_as_plain_ones(tmp_path):
    """A Parquet file written from a frame of pyarrow-backed or nullable types reads as the
    same values from CSV do (`loopline.data.plain_types`)."""
    from loopline.data.tables import read_table

    n = 120
    frame = pd.DataFrame({
        "count": pd.array([i % 7 if i % 11 else None for i in range(n)], dtype="int64[pyarrow]"),
        "amount": pd.array([i / 3 for i in range(n)], dtype="double[pyarrow]"),
        "colour": pd.array([["red", "green", None][i % 3] for i in range(n)], dtype="string[pyarrow]"),
        "flag": pd.array([i % 2 == 0 for i in range(n)], dtype="bool[pyarrow]"),
        "size": pd.Categorical([["s", "m", "l"][i % 3] for i in range(n)]),
        "label": np.tile(["yes", "no"], n // 2),
    })
    frame.to_parquet(tmp_path / "arrow.parquet", index=False)
    frame.to_csv(tmp_path / "arrow.csv", index=False)
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "arrow.parquet")), read_table(str(tmp_path / "arrow.csv")))
    result, _ = _load(tmp_path / "arrow.parquet", tmp_path / "out", target="label")
    assert result.spec.features == {"count": NUMERIC, "amount": NUMERIC, "colour": CATEGORICAL, "flag": CATEGORICAL,
                                    "size": CATEGORICAL}
