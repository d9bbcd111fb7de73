"""Benchmark: which bias mitigation changes accuracy or bias on the synthetic data, beyond noise?

Trains the default model (small_cnn + MLP, from_scratch schedule) once per seed for every mitigation — the
baseline (weighting=none, sampling=shuffle, calibration=none), weighting=group, weighting=group_dro,
sampling=balanced, calibration=group_offset, weighting=jtt and weighting=lds, each alone on top of the baseline
(with its default settings) — as one facebias sweep per mitigation into one fresh MLflow store. Then prints, per
test score and mitigation: the mean and 95 % interval from the two-level bootstrap (seeds and test images), the
difference from the baseline and its p-value, Holm-corrected over every test of the table
(facebias.report.comparison; beyond noise when < 0.05). Every arm needs at least 3 seeds.

    python benchmarks/mitigation.py [--seeds 0,1,2,3,4] [--workdir DIR] [--report-only] [overrides ...]

Extra overrides go to every run, e.g. smaller data for a shorter benchmark: data.n_train=1500 data.n_valid=500,
or `--seeds 0,1,2 trainer=smoke` to try the benchmark itself in a few minutes (quick mode: no results).
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
from facebias.report.table import finished_runs
from facebias.tracking.queries import load_sweep_runs
from facebias.tracking.store import TrackingStore

BASELINE_ARM = "none (baseline)"
MITIGATIONS: dict[str, tuple[str, ...]] = {
    BASELINE_ARM: ("weighting=none", "sampling=shuffle", "calibration=none"),
    "weighting=group": ("weighting=group", "sampling=shuffle", "calibration=none"),
    "weighting=group_dro": ("weighting=group_dro", "sampling=shuffle", "calibration=none"),
    "sampling=balanced": ("weighting=none", "sampling=balanced", "calibration=none"),
    "calibration=group_offset": ("weighting=none", "sampling=shuffle", "calibration=group_offset"),
    "weighting=jtt": ("weighting=jtt", "sampling=shuffle", "calibration=none"),
    "weighting=lds": ("weighting=lds", "sampling=shuffle", "calibration=none"),
}
"""Display name → the three group choices of its runs."""


def _sweep_name(name: str) -> str:
    return "mitigation_" + name.split(" ")[0].replace("=", "_")


def report(store: TrackingStore) -> None:
    """Print the table of every mitigation against the baseline."""
    arms = {}
    for name in MITIGATIONS:
        parent_tags = {SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE, "mlflow.runName": _sweep_name(name)}
        runs = finished_runs(load_sweep_runs(store, parent_tags=parent_tags)[1])
        arms[name] = list(run_predictions(store, runs, "test").values())
    table = compare_with_baseline(arms, BASELINE_ARM)
    print(f"\ntest split, default model; mean [95 % two-level bootstrap interval: seeds and test images]; each "
          f"mitigation vs. the baseline, Holm-corrected over the {table.attrs['family']} tests of the table "
          f"(α = {table.attrs['alpha']})")
    print(markdown(table))


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
    report(TrackingStore(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", "facebias"))


if __name__ == "__main__":
    main()
