"""A tuning worker as a process of its own: `python -m loopline.tuning.worker --train ... --storage-url ...`.

Several workers share one study through its RDB storage (see `loopline.tuning.study`); the benchmarks
start them with `worker_command`. Each prints one JSON line when it ends.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from loopline.core.errors import LooplineError
from loopline.core.logs import setup_logging
from loopline.tuning import budget
from loopline.tuning.streaming import read_sample
from loopline.tuning.study import TuningSettings, configure_threads
from loopline.tuning.training import tune


def worker_command(*, train: str, validation: str, settings: TuningSettings, worker: int, threads: int,
                   heartbeat_interval: float, grace_period: float) -> list[str]:
    """The command line of a worker process (`python -m loopline.tuning.worker ...`); the settings
    travel as JSON, so the worker declares none of them again."""
    return [
        sys.executable, "-m", "loopline.tuning.worker", "--train", str(train), "--validation", str(validation),
        "--settings", settings.to_json(), "--worker", str(worker), "--threads", str(threads),
        "--heartbeat-interval", str(heartbeat_interval), "--grace-period", str(grace_period),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run one tuning worker on Loopline dataset splits against a shared storage."""
    parser = argparse.ArgumentParser(prog="python -m loopline.tuning.worker", description=main.__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--settings", required=True, help="the TuningSettings as JSON (storage_url and study_name set)")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True, help="TensorFlow threads; 0: the CPU limit or all")
    parser.add_argument("--heartbeat-interval", type=float, required=True)
    parser.add_argument("--grace-period", type=float, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        settings = TuningSettings.from_json(args.settings)
        # only the rows tuning uses: the target column first, then the sampled rows
        train, spec = read_sample(args.train, budget.TUNING_SAMPLE_ROWS, seed=settings.seed)
        validation, _ = read_sample(args.validation, budget.TUNING_SAMPLE_ROWS, seed=settings.seed)
        configure_threads(args.threads)
        result = tune(train, validation, spec, settings=settings, worker=args.worker,
                      heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period)
    except LooplineError as exc:
        print(f"loopline.tuning.worker: error: {exc}", flush=True)
        return 2
    print(json.dumps({"worker": args.worker, "ran": result.ran, "counted": result.counted}), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is stored and printed by now. Skip the interpreter's teardown: with TensorFlow
    # loaded it takes 1.5-2 s, and a worker's end is what a parallel study waits for.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
