"""A tuning worker as a process of its own: `python -m loopline.tuning_worker --train ... --storage-url ...`.

Several workers share one study through its RDB storage (see `loopline.tuning`); the benchmarks
start them with `worker_command`. Each prints one JSON line when it ends.
"""

from __future__ import annotations

import json
import logging
import os

from loopline import data as data_lib
from loopline.errors import LooplineError
from loopline.logs import setup_logging
from loopline.training import tune
from loopline.tuning import GRACE_PERIOD, HEARTBEAT_INTERVAL, TuningSettings, configure_threads


def worker_command(*, train: str, validation: str, storage_url: str, study_name: str, n_trials: int,
                   max_epochs: int, worker: int = 1, threads: int = 0, seed: int = 42, pruner: str = "median",
                   search_space: dict | None = None, heartbeat_interval: float = HEARTBEAT_INTERVAL,
                   grace_period: float = GRACE_PERIOD) -> list[str]:
    """The command line of a worker process (`python -m loopline.tuning_worker ...`)."""
    import sys

    return [
        sys.executable, "-m", "loopline.tuning_worker", "--train", str(train), "--validation", str(validation),
        "--storage-url", storage_url, "--study-name", study_name, "--n-trials", str(n_trials),
        "--max-epochs", str(max_epochs), "--worker", str(worker), "--threads", str(threads), "--seed", str(seed),
        "--pruner", pruner, "--search-space", json.dumps(search_space or {}),
        "--heartbeat-interval", str(heartbeat_interval), "--grace-period", str(grace_period),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run one tuning worker on Loopline dataset splits against a shared storage."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m loopline.tuning_worker", description=main.__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--storage-url", required=True)
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--n-trials", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--timeout-seconds", type=float, default=0.0)
    parser.add_argument("--objective", default="roc_auc")
    parser.add_argument("--pruner", default="median")
    parser.add_argument("--search-space", default="{}", help="JSON overrides of the search space")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads; 0: the CPU limit or all")
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--heartbeat-interval", type=float, default=HEARTBEAT_INTERVAL)
    parser.add_argument("--grace-period", type=float, default=GRACE_PERIOD)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        settings = TuningSettings(
            n_trials=args.n_trials, max_epochs=args.max_epochs, timeout_seconds=args.timeout_seconds,
            objective=args.objective, pruner=args.pruner, storage_url=args.storage_url,
            study_name=args.study_name, seed=args.seed, search_space=json.loads(args.search_space),
            tracking_uri=args.tracking_uri,
        )
        train, spec = data_lib.read_split(args.train)
        validation, _ = data_lib.read_split(args.validation)
        configure_threads(args.threads)
        result = tune(train, validation, spec, settings=settings, worker=args.worker,
                      heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period)
    except LooplineError as exc:
        print(f"loopline.tuning_worker: error: {exc}", flush=True)
        return 2
    print(json.dumps({"worker": args.worker, "ran": result.ran, "counted": result.counted}), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    code = main()
    # Everything is stored and printed by now. Skip the interpreter's teardown: with TensorFlow
    # loaded it takes 1.5-2 s, and a worker's end is what a parallel study waits for.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
