"""Benchmark: the default run as a new user starts it — its summary (the README's example output), its wall time,
and the share of that time the statistics take (bootstrap intervals and permutation nulls of both splits).

Runs `python -m facebias.train [overrides]` in a fresh folder with a fresh cache, prints what it printed, then
times the statistics again on the run's own logged predictions (same sizes, same settings) and prints the ratio.

    python benchmarks/default_run.py [--workdir DIR] [--reuse] [overrides ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from facebias.config import StatisticsConfig
from facebias.evaluation import evaluate_split

REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where mlruns/ and multirun/ go (default: temp)")
    parser.add_argument("--reuse", action="store_true",
                        help="time the statistics on the newest FINISHED run already in --workdir's store, against "
                             "that run's MLflow duration (start to end, so a shorter denominator), without training")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facebias-default-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FACEBIAS_CACHE": str(workdir / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "facebias.train", "trainer.verbose=0", *args.overrides]
    if not args.reuse:
        print("running:", " ".join(command), f"(in {workdir}, empty cache)", flush=True)
        started = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        print(result.stdout[result.stdout.index("== facebias run finished =="):])
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("facebias").experiment_id],
                             filter_string="attributes.status = 'FINISHED' and metrics.`test/mae` > 0")[0]
    if args.reuse:
        wall = (run.info.end_time - run.info.start_time) / 1000
    settings = StatisticsConfig()
    timings = []
    for _ in range(REPEATS):
        seconds = 0.0
        for split in ("val", "test"):
            frame = pd.read_csv(client.download_artifacts(run.info.run_id, f"predictions_{split}.csv", str(workdir)))
            attributes = frame[["gender", "ethnicity", "expression"]]
            begin = time.perf_counter()
            evaluate_split(split, frame["apparent_age"], frame["predicted_age"], attributes, settings)
            with_statistics = time.perf_counter() - begin
            begin = time.perf_counter()
            evaluate_split(split, frame["apparent_age"], frame["predicted_age"], attributes, None)
            seconds += with_statistics - (time.perf_counter() - begin)
        timings.append(seconds)
    statistics = min(timings)
    print(f"wall time of the run ({'its MLflow duration' if args.reuse else 'process start to exit, data generated'}):"
          f" {wall:.1f} s")
    print(f"statistics of both splits ({settings.bootstrap_resamples} resamples, {settings.permutations} "
          f"permutations; best of {REPEATS}): {statistics:.2f} s = {statistics / wall:.1%} of the run")


if __name__ == "__main__":
    main()
