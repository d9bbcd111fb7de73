"""Benchmark: which bias mitigation changes accuracy or bias on the synthetic data, beyond noise?

Trains the default model (small_cnn + MLP, from_scratch schedule) once per seed for every arm of
`+sweep=mitigations` — the baseline (conf/experiment/mitigation_none.yaml: weighting=none, sampling=shuffle,
calibration=none) and each mitigation alone on top of it (conf/experiment/mitigation_*.yaml) — as one facebias
sweep (one MLflow parent, a child per arm and seed) into the workdir's MLflow store. Then prints, per test score
and arm: the mean and 95 % interval from the two-level bootstrap (seeds and test images), the difference from the
baseline and its p-value, Holm-corrected over every test of the table (facebias.report.comparison; beyond noise
when < 0.05). The sweep's own report (`python -m facebias.report`) marks each column's best set. Every arm needs at
least 3 seeds.

    python benchmarks/mitigation.py [--seeds 0,1,2,3,4] [--workdir DIR] [--report-only] [overrides ...]

Rerunning the same command resumes the sweep (finished jobs are skipped). Extra overrides go to every run, e.g.
`--seeds 0,1,2 trainer=smoke` to try the benchmark itself in a few minutes (quick mode: no results).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from facebias.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.report.build import run_predictions
from facebias.report.comparison import compare_with_baseline, markdown
from facebias.report.table import experiment_names, finished_runs
from facebias.tracking.queries import load_sweep_runs
from facebias.tracking.store import TrackingStore

BASELINE = "mitigation_none"
"""The arm every other arm is compared with (chosen in advance)."""


def report(store: TrackingStore) -> None:
    """Print the table of every arm against the baseline, from the most recent `mitigations` sweep."""
    tags = {SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE, "mlflow.runName": "mitigations"}
    _, children = load_sweep_runs(store, parent_tags=tags)
    runs = finished_runs(children)
    predictions = run_predictions(store, runs, "test")
    names = experiment_names(runs)
    arms = {arm: [predictions[run_id] for run_id in runs.loc[names == arm, "run_id"]]
            for arm in sorted(set(names), key=lambda arm: (arm != BASELINE, arm))}
    table = compare_with_baseline(arms, BASELINE)
    print(f"\ntest split; mean [95 % two-level bootstrap interval: seeds and test images] in years; each arm vs. "
          f"{BASELINE}, Holm-corrected over the {table.attrs['family']} tests of the table "
          f"(α = {table.attrs['alpha']})")
    print(markdown(table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--workdir", type=Path, default=None, help="where mlruns/ and multirun/ go (default: temp)")
    parser.add_argument("--report-only", action="store_true", help="only report the sweep already in --workdir")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facebias-mitigation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        command = [sys.executable, "-m", "facebias.train", "+sweep=mitigations", f"seed={args.seeds}",
                   "trainer.verbose=0", *args.overrides]
        print("running:", " ".join(command), f"(in {workdir})", flush=True)
        subprocess.run(command, cwd=workdir, check=True)
    report(TrackingStore(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", "facebias"))


if __name__ == "__main__":
    main()
