"""Benchmark: facebias' fast process ends (facebias.shutdown, the default) against `FACEBIAS_FULL_EXIT=1`, side by
side in one run, for a quick-mode run (its process ends without the interpreter's finalization) and for a sweep of
two quick jobs in one joblib worker process (the launcher ends as a run does; the worker, whose end is joblib's,
skips the finalization's garbage collections over what it holds).

Runs `python -m facebias.train trainer=smoke` on the tests' 240 / 96 / 96 synthetic images as a user would, each in
a fresh folder (so each creates its SQLite store), one TensorFlow thread per pool as the tests run it, alternating
full and fast exit, `--pairs` times per case. Prints each command's CPU seconds (user + system of it and the
processes it waited for) and wall time, the medians and the ratio full / fast.

    python benchmarks/process_exit.py [--pairs 5] [--case run|sweep|both]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from side_by_side import QUICK_RUN, alternate, timed_train

from facebias.shutdown import FULL_EXIT_ENV

CASES = {"run": QUICK_RUN,
         "sweep": ["-m", *QUICK_RUN, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1"]}
FULL, FAST = "full exit", "fast exit"


def timed_run(case: str, way: str, folder: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one command of `case` in `folder`, ending the `way` way."""
    return timed_train(CASES[case], folder, folder.parent / "cache", {FULL_EXIT_ENV: "1" if way == FULL else None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--case", choices=[*CASES, "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facebias-process-exit-") as scratch:
        root = Path(scratch)
        timed_run("run", FAST, root / "warm-up")  # generates the synthetic data into the shared cache, outside pairs
        for case in CASES if args.case == "both" else [args.case]:
            median = alternate(args.pairs, [FULL, FAST],
                               lambda way, pair, case=case: timed_run(case, way, root / f"{case}-{pair}-{way[:4]}"))
            print(f"{case}, medians of {args.pairs} pairs: full exit {median[FULL][0]:.2f} s CPU "
                  f"({median[FULL][1]:.2f} s wall), fast exit {median[FAST][0]:.2f} s CPU "
                  f"({median[FAST][1]:.2f} s wall): {median[FULL][0] / median[FAST][0]:.2f}x the CPU, "
                  f"{median[FULL][0] - median[FAST][0]:.2f} s more", flush=True)


if __name__ == "__main__":
    main()
