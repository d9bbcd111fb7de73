"""Benchmark: 4 parallel jobs recording into one store — a SQLite file vs. a team MLflow server on PostgreSQL.

Runs the same 4-job sweep (`-m seed=0,1,2,3`, quick mode) once per store, alternately, each in a fresh folder and
its own experiment: into
<folder>/mlruns/mlflow.db (SQLite) and into the tracking server at --server (e.g. started by
scripts/team_server.sh; its credentials from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD). The jobs run
as one Slurm job array, 4 at a time (--launcher slurm, a running cluster such as scripts/local_slurm.sh), or as 4
local processes (--launcher local). Prints, per sweep and store: the wall time of the sweep command, the retries
its jobs needed (log lines of a busy store, of an unreachable server), and how many runs ended FINISHED; then the
mean wall times side by side with their ratio. Extra arguments are Hydra overrides for every job.

    python benchmarks/parallel_tracking_stores.py --server http://127.0.0.1:5000 [--launcher slurm] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facebias.tracking.store import RETRY_MESSAGE

JOBS = 4
UNREACHABLE_MESSAGE = "is unreachable"
LAUNCHERS = {
    "slurm": ["hydra/launcher=slurm", f"hydra.launcher.array_parallelism={JOBS}", "hydra.sweeper.max_batch_size=null"],
    "local": ["hydra/launcher=local_processes", f"hydra.sweeper.max_batch_size={JOBS}"],
}
QUICK = ["trainer=smoke", "data.n_train=240", "data.n_valid=96", "data.n_test=96"]


def count_lines(folder: Path, text: str) -> int:
    """Lines containing `text` in the sweep's output and in every job's log under `folder`."""
    logs = [folder / "sweep.log", *folder.glob("multirun/*/*/*/train.log"), *folder.glob("multirun/*/*/.submitit/*/*")]
    return sum(path.read_text(errors="replace").count(text) for path in logs if path.is_file())


def finished_runs(tracking_uri: str, experiment_name: str) -> int:
    """How many job runs (not the sweep's parent) of the experiment ended FINISHED."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    return sum(run.info.status == "FINISHED" and run.data.tags.get("facebias.role") != "sweep" for run in runs)


def timed_sweep(store: str, server: str, launcher: str, overrides: list[str]) -> dict[str, float]:
    """Run the sweep into `store` ("sqlite" or "postgresql") in a fresh folder: wall time, retries, finished runs."""
    folder = Path(tempfile.mkdtemp(prefix=f"facebias-{store}-"))
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    tracking_uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    if store == "postgresql":
        env["MLFLOW_TRACKING_URI"] = tracking_uri = server
    seeds = ",".join(str(seed) for seed in range(JOBS))
    command = [sys.executable, "-m", "facebias.train", "-m", f"seed={seeds}", *QUICK, *LAUNCHERS[launcher],
               f"tracking.experiment={folder.name}", *overrides]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (folder / "sweep.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"the sweep into {store} failed ({result.returncode}); see {folder / 'sweep.log'}")
    measured = {"wall": wall, "busy": count_lines(folder, RETRY_MESSAGE),
                "unreachable": count_lines(folder, UNREACHABLE_MESSAGE),
                "finished": finished_runs(tracking_uri, folder.name)}
    shutil.rmtree(folder)  # kept only when the sweep failed, for its log
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the team tracking server's URI (PostgreSQL backend)")
    parser.add_argument("--launcher", choices=sorted(LAUNCHERS), default="slurm")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    for _ in range(args.repeats):
        for store in walls:
            facts = timed_sweep(store, args.server, args.launcher, args.overrides)
            walls[store].append(facts["wall"])
            print(f"{store:<10} {JOBS} jobs ({args.launcher}): {facts['wall']:6.1f} s, "
                  f"{facts['busy']:.0f} busy-store retries, {facts['unreachable']:.0f} unreachable-server waits, "
                  f"{facts['finished']:.0f}/{JOBS} runs FINISHED", flush=True)
    sqlite, postgresql = statistics.mean(walls["sqlite"]), statistics.mean(walls["postgresql"])
    print(f"mean wall time: sqlite {sqlite:.1f} s, postgresql server {postgresql:.1f} s, "
          f"ratio postgresql/sqlite {postgresql / sqlite:.2f}")


if __name__ == "__main__":
    main()
