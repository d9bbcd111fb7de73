"""Benchmark: does the study's group weighting change accuracy and bias on the synthetic data, beyond noise?

Trains the default model (small_cnn + MLP, from_scratch schedule) with `weighting=none` and `weighting=group` over
several seeds as one facebias sweep into a fresh MLflow store, then prints, per test score: each arm's mean and
95 % t interval over seeds, the difference group − none, and Welch's t test of it (beyond noise when p < 0.05).

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
from facebias.report.significance import seed_interval, welch_p
from facebias.report.table import METRICS, finished_runs
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
    _, children = load_sweep_runs(TrackingStore(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", "facebias"),
                                  parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    runs = finished_runs(children)
    arms = {arm: runs[runs["tags.facebias.weighting"] == arm] for arm in ("none", "group")}
    counts = {arm: len(frame) for arm, frame in arms.items()}
    print(f"\ntest split, {counts['none']} seeds with weighting=none and {counts['group']} with weighting=group; "
          "mean [95 % t interval over seeds]")
    print("| score | none | group | group − none | Welch p | beyond noise? |")
    print("|---|---:|---:|---:|---:|---|")
    for metric, column in METRICS:
        values = {arm: frame[f"metrics.test/{metric}"].astype(float).to_numpy() for arm, frame in arms.items()}
        cells = []
        for arm in ("none", "group"):
            low, high = seed_interval(values[arm])
            cells.append(f"{values[arm].mean():.3f} [{low:.3f}, {high:.3f}]")
        p_value = welch_p(values["group"], values["none"])
        difference = values["group"].mean() - values["none"].mean()
        verdict = "yes" if p_value < 0.05 else "no"
        print(f"| {column} | {cells[0]} | {cells[1]} | {difference:+.3f} | {p_value:.3f} | {verdict} |")
    print(f"\n(seeds: {', '.join(str(int(s)) for s in np.sort(runs['tags.facebias.seed'].astype(int).unique()))})")


if __name__ == "__main__":
    main()
