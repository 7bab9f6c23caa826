"""The reference profile stored with a model: drift against it agrees with drift against the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline import drift
from loopline.core.errors import DataError
from loopline.data.spec import DatasetSpec
from loopline.drift import reference_profile

SPEC = DatasetSpec(target="y", features={"amount": "numeric", "hour": "numeric", "channel": "categorical"},
                   classes=["0", "1"])


def _window(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount": rng.lognormal(3.0 + shift, 1.0, size=n),
        "hour": rng.integers(0, 24, size=n).astype(float),
        "channel": rng.choice(["web", "shop", "phone"], p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4], size=n),
        "y": rng.choice(["0", "1"], size=n),
    })
    frame.loc[::20, "amount"] = np.nan
    return frame


@pytest.mark.parametrize("shift", [0.0, 0.8])
def test_drift_against_the_profile_matches_drift_against_the_rows(shift, tmp_path):
    reference, current = _window(20_000, 1), _window(5_000, 2, shift)
    reference_profile.write(reference_profile.build(reference, SPEC), tmp_path)
    profile = reference_profile.read(tmp_path)
    settings = drift.DriftSettings(drift_share=0.5)
    kinds = {name: kind for name, kind in SPEC.features.items()}
    full = drift.compute(reference, current, kinds, settings)
    profiled = reference_profile.compute(profile, current, settings)
    assert profiled.drifted == full.drifted and profiled.drifted_features == full.drifted_features
    assert profiled.reference_rows == 20_000 and profiled.current_rows == 5_000
    for name in SPEC.features:
        exact, approx = full.features[name], profiled.features[name]
        assert approx["psi"] == pytest.approx(exact["psi"], rel=1e-9, abs=1e-12)  # same bins, same counts
        assert approx["null_rate_reference"] == exact["null_rate_reference"]
        if name == "channel":
            assert approx["jensenshannon"] == pytest.approx(exact["jensenshannon"])
            assert approx["chi2_p_value"] == pytest.approx(exact["chi2_p_value"])
        else:
            assert abs(approx["ks_statistic"] - exact["ks_statistic"]) <= 1 / (reference_profile.QUANTILES - 1) + 1e-9
            assert approx["wasserstein"] == pytest.approx(exact["wasserstein"], rel=0.1)
    assert (profiled.features["amount"]["drifted"], full.features["amount"]["drifted"]) == (shift > 0, shift > 0)


def test_the_profile_is_small_and_bounded(tmp_path):
    frame = _window(50_000, 3)
    frame["channel"] = [f"c{i % 1500}" for i in range(len(frame))]  # many categories
    profile = reference_profile.build(frame, SPEC)
    counts = profile["features"]["channel"]["counts"]
    assert len(counts) == reference_profile.MAX_CATEGORIES + 1 and sum(counts.values()) == 50_000
    size = reference_profile.write(profile, tmp_path).stat().st_size
    assert size < 200_000
    # a current window with categories beyond the kept ones is compared through the "(other)" bucket
    result = reference_profile.compute(profile, frame.sample(2000, random_state=0), drift.DriftSettings())
    channel = result.features["channel"]
    assert np.isfinite(channel["jensenshannon"]) and channel["new_categories"] == []


def test_a_model_without_a_profile_and_bad_windows(tmp_path):
    assert reference_profile.read(tmp_path) is None
    (tmp_path / reference_profile.PROFILE_FILE).write_text("{}")
    with pytest.raises(DataError, match="not a Loopline reference profile"):
        reference_profile.read(tmp_path)
    profile = reference_profile.build(_window(1000, 4), SPEC)
    with pytest.raises(DataError, match="lacks column\\(s\\) the reference profile has: hour"):
        reference_profile.compute(profile, _window(100, 5).drop(columns=["hour"]), drift.DriftSettings())
    empty = _window(100, 5).assign(amount=np.nan)
    with pytest.raises(DataError, match="column 'amount' has no values in the current data"):
        reference_profile.compute(profile, empty, drift.DriftSettings())
