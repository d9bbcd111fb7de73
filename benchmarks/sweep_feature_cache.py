"""Benchmark: the quick-mode 8-experiment grid with the shared feature cache vs. without it.

Runs `python -m facebias.train +sweep=paper_grid_quick` twice in fresh folders — `trainer.feature_cache=true`
with an empty feature cache, then `trainer.feature_cache=false` — and prints both wall times, their ratio, and
the feature-cache hits and misses of every job of the cached sweep, with its first stage's note (why it did or did
not train on cached features: a quick-mode stage reads fewer images than one feature pass, so it does not).

    python benchmarks/sweep_feature_cache.py [overrides ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facebias.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.tracking.queries import load_sweep_runs
from facebias.tracking.store import TrackingStore


def timed_sweep(enabled: bool, overrides: list[str]) -> tuple[float, Path]:
    workdir = Path(tempfile.mkdtemp(prefix=f"facebias-grid-cache-{enabled}-"))
    environment = {**os.environ, "FACEBIAS_CACHE": os.environ.get("FACEBIAS_CACHE", str(workdir / "cache"))}
    feature_dir = Path(environment["FACEBIAS_CACHE"]) / "features"
    if feature_dir.exists():
        for path in feature_dir.iterdir():
            path.unlink()
    command = [sys.executable, "-m", "facebias.train", "+sweep=paper_grid_quick",
               f"trainer.feature_cache={str(enabled).lower()}", *overrides]
    started = time.perf_counter()
    subprocess.run(command, cwd=workdir, env=environment, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cached_s, cached_dir = timed_sweep(True, args.overrides)
    uncached_s, uncached_dir = timed_sweep(False, args.overrides)
    print(f"quick grid with the feature cache:    {cached_s:7.1f} s")
    print(f"quick grid without the feature cache: {uncached_s:7.1f} s   ratio {uncached_s / cached_s:.2f}x")
    _, children = load_sweep_runs(TrackingStore(f"sqlite:///{cached_dir / 'mlruns' / 'mlflow.db'}", "facebias"),
                                  parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    for _, child in children.sort_values("tags.facebias.experiment").iterrows():
        print(f"  {child['tags.facebias.experiment']:<32} hits {child['metrics.feature_cache/hits']:.0f} "
              f"misses {child['metrics.feature_cache/misses']:.0f}  "
              f"{child['tags.facebias.feature_cache'].split(' | ')[0]}")
    for workdir in (cached_dir, uncached_dir):
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
