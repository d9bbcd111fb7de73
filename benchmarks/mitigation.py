"""Benchmark: which bias mitigation changes accuracy or bias on the synthetic data, beyond noise?

Trains the default model (small_cnn + MLP, from_scratch schedule) once per seed for every mitigation — the
baseline (weighting=none, sampling=shuffle, calibration=none), weighting=group, weighting=group_dro,
sampling=balanced and calibration=group_offset, each alone on top of the baseline — as one facebias sweep per
mitigation into one fresh MLflow store. Then prints, per test score and mitigation: the mean and 95 % t interval
over seeds, the mean noise floor (each run's permutation null of the bias), the difference from the baseline and
Welch's t test of it (beyond noise when p < 0.05).

    python benchmarks/mitigation.py [--seeds 0,1,2,3,4] [--workdir DIR] [--report-only] [overrides ...]

Extra overrides go to every run, e.g. smaller data for a shorter benchmark: data.n_train=1500 data.n_valid=500.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from facebias.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.report.significance import seed_interval, welch_p
from facebias.report.table import METRICS
from facebias.tracking.queries import load_sweep_runs
from facebias.tracking.store import TrackingStore

BASELINE = ("weighting=none", "sampling=shuffle", "calibration=none")
MITIGATIONS: dict[str, tuple[str, ...]] = {
    "none (baseline)": BASELINE,
    "weighting=group": ("weighting=group", "sampling=shuffle", "calibration=none"),
    "weighting=group_dro": ("weighting=group_dro", "sampling=shuffle", "calibration=none"),
    "sampling=balanced": ("weighting=none", "sampling=balanced", "calibration=none"),
    "calibration=group_offset": ("weighting=none", "sampling=shuffle", "calibration=group_offset"),
}
"""Display name → the three group choices of its runs."""


def _sweep_name(name: str) -> str:
    return "mitigation_" + name.split(" ")[0].replace("=", "_")


def _runs(store: str, sweep: str) -> pd.DataFrame:
    """The FINISHED runs of the most recent sweep named `sweep`."""
    _, children = load_sweep_runs(
        TrackingStore(store, "facebias"), parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE, "mlflow.runName": sweep}
    )
    return children[children["status"] == "FINISHED"]


def _cell(values: np.ndarray) -> str:
    low, high = seed_interval(values)
    return f"{values.mean():.3f} [{low:.3f}, {high:.3f}]"


def report(store: str) -> None:
    """Print the table of every mitigation against the baseline."""
    runs = {name: _runs(store, _sweep_name(name)) for name in MITIGATIONS}
    baseline = runs["none (baseline)"]
    seeds = sorted(int(s) for s in baseline["tags.facebias.seed"].unique())
    print(
        f"\ntest split, default model, seeds {seeds}; mean [95 % t interval over seeds]; noise floor: mean of the "
        "runs' permutation nulls; Δ: mitigation − baseline, Welch p, beyond noise when p < 0.05"
    )
    print("| mitigation | n | " + " | ".join(column for _, column in METRICS) + " |")
    print("|---|---:|" + "---:|" * len(METRICS))
    for name, frame in runs.items():
        cells = []
        for metric, _ in METRICS:
            values = frame[f"metrics.test/{metric}"].astype(float).to_numpy()
            cell = _cell(values)
            null = f"metrics.test/{metric}_null"
            if null in frame:
                cell += f"<br>floor {frame[null].astype(float).mean():.3f}"
            if name != "none (baseline)":
                base = baseline[f"metrics.test/{metric}"].astype(float).to_numpy()
                p_value = welch_p(values, base)
                verdict = "**beyond noise**" if p_value < 0.05 else "within noise"
                cell += f"<br>Δ {values.mean() - base.mean():+.3f}, p {p_value:.3f}, {verdict}"
            cells.append(cell)
        print(f"| {name} | {len(frame)} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--workdir", type=Path, default=None, help="where mlruns/ and multirun/ go (default: temp)")
    parser.add_argument("--report-only", action="store_true", help="only report the sweeps already in --workdir")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facebias-mitigation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for name, choices in MITIGATIONS.items():
            command = [
                sys.executable,
                "-m",
                "facebias.train",
                "-m",
                *choices,
                f"seed={args.seeds}",
                "trainer.verbose=0",
                f"sweep_name={_sweep_name(name)}",
                *args.overrides,
            ]
            print("running:", " ".join(command), f"(in {workdir})", flush=True)
            subprocess.run(command, cwd=workdir, check=True)
    report(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


if __name__ == "__main__":
    main()
