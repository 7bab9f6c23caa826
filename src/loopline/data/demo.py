"""Built-in demo data: synthetic card transactions with a fraud label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from loopline.core.errors import DataError

MERCHANTS = ["grocery", "fuel", "restaurant", "electronics", "travel", "fashion", "gaming", "pharmacy"]
CHANNELS = ["chip", "contactless", "online", "phone"]


def demo_transactions(n_rows: int = 6000, *, shift: float = 0.0, seed: int = 7) -> pd.DataFrame:
    """Seeded synthetic transactions: numeric and categorical columns, some missing values, and
    an `is_fraud` label. `shift` (0 = reference) moves the feature distributions, as a new
    season or a new customer segment would."""
    if n_rows < 100:
        raise DataError(f"n_rows must be at least 100, got {n_rows}")
    if n_rows > MAX_DEMO_ROWS:
        raise DataError(f"n_rows must be at most {MAX_DEMO_ROWS:,} for the demo data, got {n_rows:,} "
                        "(give your own file with --data for more)")
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


MAX_DEMO_ROWS = 10_000_000  # about 1 GiB in memory
DEMO_TARGET = "is_fraud"
DEMO_IGNORE = ["transaction_id"]


def prepare_demo_data(home: Path, *, rows: int = 6000) -> tuple[str, str]:
    """The built-in demo: a reference batch and a shifted batch of synthetic transactions."""
    folder = home / "data"
    folder.mkdir(parents=True, exist_ok=True)
    reference, shifted = folder / "transactions.csv", folder / "transactions_shifted.csv"
    demo_transactions(rows, shift=0.0, seed=7).to_csv(reference, index=False)
    demo_transactions(rows, shift=1.0, seed=8).to_csv(shifted, index=False)
    return str(reference), str(shifted)
