"""Two ways of running a facebias command, timed side by side: alternated pairs, each process's CPU seconds (user +
system) and wall time, and each way's medians. Used by the benchmarks that compare two settings of one run."""

from __future__ import annotations

import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ONE_THREAD_PER_POOL = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
"""One TensorFlow thread per pool, as the tests run their processes."""


def timed_process(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `command` run to its end in `cwd` (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(list(command), cwd=cwd, env=dict(env), check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def alternate(pairs: int, ways: Sequence[str], run: Callable[[str, int], tuple[float, float]]
              ) -> dict[str, tuple[float, float]]:
    """`run(way, pair)` for every way in order, `pairs` times, each result printed; each way's median (CPU, wall)."""
    results: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    width = max(map(len, ways))
    for pair in range(pairs):
        for way in ways:
            cpu, wall = run(way, pair)
            results[way].append((cpu, wall))
            print(f"pair {pair}: {way:{width}} {cpu:6.2f} s CPU {wall:6.2f} s wall", flush=True)
    return {way: (statistics.median(cpu for cpu, _ in runs), statistics.median(wall for _, wall in runs))
            for way, runs in results.items()}
