"""Benchmark: how many concurrent runs one team tracking server holds — a real run's tracking calls, replayed.

Records one quick-mode run (`python -m facebias.train trainer=smoke`, into a SQLite store in a temporary folder) and
reads back its tracking calls: its params, tags, each batch of metrics at the time the run logged it, and its
artifacts. Then, for each concurrency level, that many simulated runs replay those calls at the rate the run made
them (each replays the run once, so the load stops by itself; a failed call is resent after a pause, as facebias'
recorder does, and counted) against the server at --server (e.g. started by
scripts/team_server.sh; its login from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD), each into a run of its
own. Afterwards every simulated run is read back: FINISHED, every param, tag and artifact there, every metric's
history equal to the recorded one (nothing lost, nothing twice). Prints per level the requests, their p50/p99
latency, errors, the server's CPU (its process group, read from /proc: --server-pid, e.g. the server.pid that
team_server.sh writes) and the checks; exits 1 if a check fails.

    nice -n 10 python benchmarks/team_server_load.py --server http://127.0.0.1:5000 \\
        --server-pid "$(cat /var/lib/facebias-team-server/server.pid)" [--levels 8,16,32,64] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
"""As facebias' recorder sends: no hidden retries, so that every failed request is counted."""
RECORDED_RUN = ["trainer=smoke", "data.n_train=240", "data.n_valid=96", "data.n_test=96", "tracking.experiment=load"]


@dataclass
class Trace:
    """A run's tracking calls: params and tags at its start, metric batches at their offsets, artifacts at its end."""

    params: dict[str, str]
    tags: dict[str, str]
    batches: list[tuple[float, int, dict[str, float]]]  # (seconds after the start, step, {key: value})
    artifacts: Path
    duration_s: float


def record_trace(folder: Path) -> Trace:
    """Run the quick-mode run into <folder>/mlruns/mlflow.db (unless it ran there already) and read its calls back."""
    from mlflow.tracking import MlflowClient

    if not (folder / "mlruns" / "mlflow.db").is_file():
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        result = subprocess.run([sys.executable, "-m", "facebias.train", *RECORDED_RUN], cwd=folder, env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"the run to replay failed:\n{result.stderr[-3000:]}")
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("load")
    (run,) = client.search_runs([experiment.experiment_id])
    start = run.info.start_time
    grouped: dict[tuple[int, int], dict[str, float]] = {}
    for key in run.data.metrics:
        for metric in client.get_metric_history(run.info.run_id, key):
            grouped.setdefault((metric.timestamp, metric.step), {})[key] = metric.value
    batches = sorted(((ts - start) / 1000, step, values) for (ts, step), values in grouped.items())
    artifacts = Path(client.download_artifacts(run.info.run_id, "", str(folder / "artifacts")))
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    return Trace(dict(run.data.params), tags, batches, artifacts, (run.info.end_time - start) / 1000)


@dataclass
class Level:
    """One concurrency level's measurements."""

    runs: int
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, action, what: str, attempts: int = 10):
        """Send one call, and again after a pause while it fails (as facebias' recorder resends); every attempt's
        latency and every failure are counted."""
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                return action()
            except Exception as error:
                with self.lock:
                    self.errors.append(f"{what}: {str(error).splitlines()[0][:200]}")
                if attempt == attempts - 1:
                    raise
                time.sleep(min(2.0 ** attempt, 5.0))
            finally:
                with self.lock:
                    self.latencies.append(time.perf_counter() - started)
                    self.by_kind.setdefault(what, []).append(self.latencies[-1])
        return None


def replay(client, experiment_id: str, trace: Trace, level: Level, delay_s: float) -> None:
    """One simulated run: the trace's calls at its pace, starting `delay_s` late; a failed call is resent."""
    from mlflow.entities import Metric, Param, RunTag

    time.sleep(delay_s)
    run = level.timed(lambda: client.create_run(experiment_id, run_name=f"load-{uuid.uuid4().hex[:8]}"), "create")
    with level.lock:
        level.run_ids.append(run.info.run_id)
    run_id, began = run.info.run_id, time.monotonic()
    params = [Param(k, v) for k, v in trace.params.items()]
    for start in range(0, len(params), 100):
        level.timed(lambda chunk=params[start:start + 100]: client.log_batch(run_id, params=chunk), "params")
    level.timed(lambda: client.log_batch(run_id, tags=[RunTag(k, v) for k, v in trace.tags.items()]), "tags")
    for offset, step, values in trace.batches:
        time.sleep(max(0.0, offset - (time.monotonic() - began)))
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        level.timed(lambda metrics=metrics: client.log_batch(run_id, metrics=metrics), "metrics")
    level.timed(lambda: client.log_artifacts(run_id, str(trace.artifacts)), "artifacts")
    level.timed(lambda: client.set_terminated(run_id, "FINISHED"), "terminate")


def group_cpu_s(group: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group `group`, with what their
    ended children used (a worker that uvicorn restarted counts through its supervisor)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += sum(int(value) for value in fields[11:15]) / tick
    return total


def check(client, trace: Trace, level: Level) -> list[str]:
    """What is lost or doubled in the level's runs, one line each (8 runs read back at a time)."""
    with ThreadPoolExecutor(8) as pool:
        return [line for lines in pool.map(lambda run_id: check_run(client, trace, run_id), level.run_ids)
                for line in lines]


def check_run(client, trace: Trace, run_id: str) -> list[str]:
    """What is lost or doubled in one simulated run, one line each."""
    problems = []
    files = sorted(str(p.relative_to(trace.artifacts)) for p in trace.artifacts.rglob("*") if p.is_file())
    expected: dict[str, list[tuple[int, str]]] = {}
    for _, step, values in trace.batches:
        for key, value in values.items():
            expected.setdefault(key, []).append((step, repr(value)))
    run = client.get_run(run_id)
    if run.info.status != "FINISHED":
        problems.append(f"run {run_id} is {run.info.status}")
    if run.data.params != trace.params or any(run.data.tags.get(k) != v for k, v in trace.tags.items()):
        problems.append(f"run {run_id}: params or tags differ")
    for key, history in expected.items():
        logged = sorted((m.step, repr(m.value)) for m in client.get_metric_history(run_id, key))
        if logged != sorted(history):
            problems.append(f"run {run_id}: {key} has {len(logged)} records, {len(history)} sent")
    stored = sorted(a.path for a in _walk(client, run_id, None))
    if stored != files:
        problems.append(f"run {run_id}: {len(stored)} artifacts, {len(files)} sent")
    return problems


def _walk(client, run_id: str, path: str | None):
    for info in client.list_artifacts(run_id, path):
        yield from (_walk(client, run_id, info.path) if info.is_dir else [info])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--server-pid", type=int, required=True, help="the server's process group (its first pid)")
    parser.add_argument("--levels", default="8,16,32,64")
    parser.add_argument("--folder", type=Path, default=None, help="where the replayed run is recorded (reused)")
    args = parser.parse_args()
    os.environ.update(FAIL_FAST)
    from mlflow.tracking import MlflowClient

    folder = args.folder or Path(tempfile.mkdtemp(prefix="facebias-load-"))
    folder.mkdir(parents=True, exist_ok=True)
    trace = record_trace(folder)
    calls = len(trace.batches) + 5
    values = sum(len(v) for _, _, v in trace.batches)
    files = sum(1 for p in trace.artifacts.rglob("*") if p.is_file())
    print(f"replayed run: {len(trace.params)} params, {len(trace.tags)} tags, {len(trace.batches)} metric batches "
          f"({values} values), {files} artifact files, over {trace.duration_s:.0f} s", flush=True)
    client = MlflowClient(args.server)
    failed = 0
    for runs in (int(level) for level in args.levels.split(",")):
        name = f"load-{runs}-{uuid.uuid4().hex[:6]}"
        experiment_id = client.create_experiment(name)
        level = Level(runs)
        cpu_before, started = group_cpu_s(args.server_pid), time.monotonic()
        threads = [threading.Thread(target=_quiet, args=(replay, client, experiment_id, trace, level,
                                                          trace.duration_s * i / runs)) for i in range(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        cpu = group_cpu_s(args.server_pid) - cpu_before
        p50, p99 = statistics.median(level.latencies), percentile(level.latencies, 0.99)
        print(f"{runs} runs ({runs * calls} calls planned): {len(level.latencies)} calls in {wall:.0f} s, latency "
              f"p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms, max {1000 * max(level.latencies):.0f} ms; "
              f"errors {len(level.errors)}; server CPU {cpu:.0f} s ({cpu / wall:.2f} cores)", flush=True)
        print("  p50/p99 ms by call: " + ", ".join(
            f"{what} {1000 * statistics.median(times):.0f}/{1000 * percentile(times, 0.99):.0f}"
            for what, times in level.by_kind.items()), flush=True)
        for name in FAIL_FAST:  # reading back may retry: a read twice changes nothing
            os.environ.pop(name)
        problems = check(client, trace, level)
        os.environ.update(FAIL_FAST)
        failed += bool(problems)
        print(f"  read back: {len(level.run_ids)} runs, lost or doubled: {len(problems)}", flush=True)
        for line in (level.errors + problems)[:10]:
            print(f"  {line}")
    return 1 if failed else 0


def _quiet(function, *args) -> None:
    """A simulated run's thread: an error is already counted; the run stops there."""
    try:
        function(*args)
    except Exception:
        return


if __name__ == "__main__":
    sys.exit(main())
