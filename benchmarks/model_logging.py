"""Benchmark: a quick-mode run that saves and logs its model (`tracking.log_model=true`, the default) against the
same run with `tracking.log_model=false`, side by side in one run.

Runs `python -m facebias.train trainer=smoke` on the tests' 240 / 96 / 96 synthetic images as a user would, each in
a fresh folder (so each creates its SQLite store), one TensorFlow thread per pool as the tests run it, alternating
the two settings `--pairs` times. Prints each run's CPU seconds (user + system) and wall time, the medians and the
difference.

    python benchmarks/model_logging.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from side_by_side import QUICK_RUN, alternate, timed_train

LOGGED, NOT_LOGGED = "model logged", "no model"


def timed_run(way: str, folder: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one quick run in `folder`, with or without its model."""
    return timed_train([*QUICK_RUN, f"tracking.log_model={str(way == LOGGED).lower()}"], folder,
                       folder.parent / "cache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facebias-model-logging-") as scratch:
        root = Path(scratch)
        timed_run(LOGGED, root / "warm-up")  # generates the synthetic data into the shared cache, outside the pairs
        median = alternate(args.pairs, [LOGGED, NOT_LOGGED],
                           lambda way, pair: timed_run(way, root / f"{pair}-{way.replace(' ', '-')}"))
    print(f"quick run, medians of {args.pairs} pairs: model logged {median[LOGGED][0]:.2f} s CPU "
          f"({median[LOGGED][1]:.2f} s wall), no model {median[NOT_LOGGED][0]:.2f} s CPU "
          f"({median[NOT_LOGGED][1]:.2f} s wall): {median[LOGGED][0] - median[NOT_LOGGED][0]:.2f} s of CPU for the "
          "model")


if __name__ == "__main__":
    main()
