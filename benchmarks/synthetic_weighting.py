"""Benchmark: does the study's group weighting change accuracy and bias on the synthetic data?

Trains the default model (small_cnn + MLP, from_scratch schedule) with `weighting=none` and `weighting=group`
over several seeds as one facebias sweep into a fresh MLflow store, then prints the report's table: mean ± std
of the test MAE and the four bias scores per weighting, and the group/none ratios measured in this run.

    python benchmarks/synthetic_weighting.py [--seeds 0,1,2] [--workdir DIR] [--report-only] [overrides ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from facebias.report import format_markdown, results_table
from facebias.run.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.tracking.queries import load_sweep_runs

METRICS = ("MAE", "Age Bias", "Gender Bias", "Ethnicity Bias", "Face Expression Bias")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
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
    _, children = load_sweep_runs(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", "facebias",
                                  parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    table = results_table(children)
    print(format_markdown(table))
    by_weighting = table.set_index(table["Experiment"].str.rsplit("-", n=1).str[-1])
    print("\ngroup / none (ratio of means):")
    for metric in METRICS:
        ratio = by_weighting.loc["group", metric] / by_weighting.loc["none", metric]
        print(f"  {metric:<22} {ratio:6.3f}")


if __name__ == "__main__":
    main()
