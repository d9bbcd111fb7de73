"""Benchmark: does the study's group weighting change accuracy and bias on the synthetic data, beyond noise?

Trains the default model (small_cnn + MLP, from_scratch schedule) with `weighting=none` and `weighting=group` over
several seeds as one facebias sweep into a fresh MLflow store, then prints, per test score: each arm's mean and
95 % interval from the two-level bootstrap (seeds and test images), the difference group − none, and its p-value,
Holm-corrected over every test of the table (facebias.report.comparison; beyond noise when < 0.05).

    python benchmarks/synthetic_weighting.py [--seeds 0,1,2,3,4] [--workdir DIR] [--report-only] [overrides ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from facebias.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.report.build import run_predictions
from facebias.report.comparison import compare_with_baseline, markdown
from facebias.report.table import finished_runs
from facebias.tracking.queries import load_sweep_runs
from facebias.tracking.store import TrackingStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--workdir", type=Path, default=None, help="where mlruns/ and multirun/ go (default: temp)")
    parser.add_argument("--report-only", action="store_true", help="only report the sweep already in --workdir")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facebias-weighting-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "facebias.train", "-m", "weighting=none,group", f"seed={args.seeds}",
               "trainer.verbose=0", "sweep_name=weighting_benchmark", *args.overrides]
    if not args.report_only:
        print("running:", " ".join(command), f"(in {workdir})", flush=True)
        subprocess.run(command, cwd=workdir, check=True)
    store = TrackingStore(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", "facebias")
    _, children = load_sweep_runs(store, parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    runs = finished_runs(children)
    predictions = run_predictions(store, runs, "test")
    arms = {arm: [predictions[run_id] for run_id in runs.loc[runs["tags.facebias.weighting"] == arm, "run_id"]]
            for arm in ("none", "group")}
    table = compare_with_baseline(arms, "none")
    seeds = ", ".join(str(int(s)) for s in np.sort(runs["tags.facebias.seed"].astype(int).unique()))
    print(f"\ntest split; seeds {seeds}; mean [95 % two-level bootstrap interval: seeds and test images]; "
          f"group vs. none, Holm-corrected over the {table.attrs['family']} tests of the table (α = "
          f"{table.attrs['alpha']})")
    print(markdown(table))


if __name__ == "__main__":
    main()
