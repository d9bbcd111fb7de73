"""Benchmark (chaos soak): a quick-mode sweep under a seeded schedule of random faults ends as an uninterrupted one.

Starts a real `mlflow server` on 127.0.0.1 (tests/mlflow_server.py), runs the sweep once without faults (the
reference), then runs the same command again into another experiment while a seeded schedule sends faults at random
times: SIGKILL to a job, SIGKILL to the sweep's launcher process, SIGTERM or SIGINT to a job, the tracking server
stopped for 5–40 s, and a full disk under the sweep's output folder (a small tmpfs mounted there, filled and freed
after 5–20 s; it needs root). Whenever the command ends short of success it is rerun, as a user would. Then checks:
every job's run FINISHED exactly once, none RUNNING, the parent FINISHED; every child's val/ and test/ metrics equal
the reference's bit for bit; no (metric, step) logged twice and the epochs trained (the `epoch/loss` history) equal
the reference's; the report (results.md, results.csv) equal the reference's but for the parent's run id. Prints the
fault log and the counts; exits 1 if a check fails. The uninterrupted sweep runs once per --folder: a later soak
in the same folder (another --seed) reuses it.

    nice -n 10 python benchmarks/chaos_sweep.py [--jobs 12] [--faults 15] [--seed 0] [--mean-gap-s 25] [--folder DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from mlflow_server import MlflowServer  # noqa: E402  (the tests' real server, started and stopped as an operator would)

QUICK = ["trainer=smoke", "data.n_train=240", "data.n_valid=96", "data.n_test=96"]
LAUNCHER = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
KINDS = ("kill-job", "kill-launcher", "term-job", "int-job", "server-outage", "full-disk")
JOB_SIGNALS = {"kill-job": signal.SIGKILL, "term-job": signal.SIGTERM, "int-job": signal.SIGINT}
OUTAGE_S = (5.0, 40.0)
FULL_DISK_S = (5.0, 20.0)
TMPFS_SIZE = "256m"
TARGET_WAIT_S = 600.0
MAX_COMMANDS = 60
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: sent `gap_s` after the previous one; `hold_s` for an outage or a full disk."""

    gap_s: float
    kind: str
    hold_s: float = 0.0


def fault_schedule(seed: int, count: int, mean_gap_s: float, kinds: tuple[str, ...] = KINDS) -> list[Fault]:
    """`count` faults, every kind as evenly as possible, in a seeded random order at seeded random gaps."""
    rng = random.Random(seed)
    chosen = [kinds[i % len(kinds)] for i in range(count)]
    rng.shuffle(chosen)
    faults = []
    for kind in chosen:
        hold = rng.uniform(*OUTAGE_S) if kind == "server-outage" else rng.uniform(*FULL_DISK_S)
        faults.append(Fault(rng.uniform(0.5, 1.5) * mean_gap_s, kind, hold if kind in ("server-outage", "full-disk")
                            else 0.0))
    return faults


def sweep_command(jobs: int, uri: str, experiment: str, extra: list[str]) -> list[str]:
    """The sweep a user would type (resume=auto, so that a killed job continues its run)."""
    return [sys.executable, "-m", "facebias.train", "-m", f"seed=range({jobs})", *QUICK, *LAUNCHER, "resume=auto",
            f"tracking.uri={uri}", f"tracking.experiment={experiment}", "sweep_name=chaos", *extra]


def run_environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return {**env, **THREADS, "FACEBIAS_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def default_interrupts() -> None:
    """In the sweep command's process: SIGINT and SIGQUIT as a terminal gives them. A shell that started the soak in
    the background (`cmd &`) ignores both, every process it starts inherits that, and Python then installs no
    KeyboardInterrupt handler: a SIGINT sent to a job would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def training_jobs(outputs: Path, launcher: int) -> list[tuple[int, str]]:
    """(pid, job folder) of the jobs the launcher's workers are running now: the holders named in run.lock files
    whose process is alive and a child of `launcher`."""
    found = []
    for lock in outputs.glob("*/*/*/run.lock"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(lock.read_text())["pid"])
            if _ppid(pid) == launcher:
                found.append((pid, str(lock.parent.relative_to(outputs))))
    return found


@contextlib.contextmanager
def small_tmpfs(folder: Path) -> Iterator[bool]:
    """Mount a tmpfs of TMPFS_SIZE on `folder` for the block; yields whether it could (root only)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@dataclass
class Soak:
    """The faulted sweep: its commands (rerun until one succeeds) and the fault thread."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    server: MlflowServer
    faults: list[Fault]
    disk: bool
    log: list[str] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)
    commands: int = 0
    process: subprocess.Popen | None = None
    done: threading.Event = field(default_factory=threading.Event)
    rng: random.Random = field(default_factory=random.Random)
    started: float = 0.0

    def note(self, text: str) -> None:
        line = f"t={time.monotonic() - self.started:7.1f} s  {text}"
        self.log.append(line)
        print(line, flush=True)

    def run(self) -> float:
        """Run the command until it succeeds, faults firing meanwhile; returns the wall time in seconds."""
        self.started = time.monotonic()
        injector = threading.Thread(target=self._inject, daemon=True)
        injector.start()
        while True:
            self.commands += 1
            if self.commands > MAX_COMMANDS:
                raise RuntimeError(f"the sweep did not succeed in {MAX_COMMANDS} commands")
            with (self.cwd / f"command-{self.commands}.log").open("w") as output:
                self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=output,
                                                stderr=subprocess.STDOUT, preexec_fn=default_interrupts)
                code = self.process.wait()
            self.note(f"command {self.commands} exited {code}")
            if code == 0 and (not injector.is_alive() or not self.faults):
                break
            if code == 0:
                self.note("the sweep succeeded with faults left: they are not sent")
                break
        self.done.set()
        injector.join()
        return time.monotonic() - self.started

    def _inject(self) -> None:
        for fault in self.faults:
            if self.done.wait(fault.gap_s):
                return
            getattr(self, "_" + fault.kind.replace("-", "_"))(fault)

    def _wait_for(self, find: Callable[[], object]) -> object:
        deadline = time.monotonic() + TARGET_WAIT_S
        while not self.done.is_set() and time.monotonic() < deadline:
            found = find()
            if found:
                return found
            time.sleep(0.2)
        return None

    def _job_signal(self, fault: Fault) -> None:
        outputs = self.cwd / "multirun"
        jobs = self._wait_for(lambda: self.process and training_jobs(outputs, self.process.pid))
        if not jobs:
            self.note(f"{fault.kind}: no job to send it to")
            return
        pid, folder = self.rng.choice(jobs)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, JOB_SIGNALS[fault.kind])
            self.sent[fault.kind] += 1
            self.note(f"{fault.kind}: {JOB_SIGNALS[fault.kind].name} to job pid {pid} ({folder})")

    _kill_job = _term_job = _int_job = _job_signal

    def _kill_launcher(self, fault: Fault) -> None:
        process = self._wait_for(lambda: self.process if self.process and self.process.poll() is None else None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
            self.sent[fault.kind] += 1
            self.note(f"kill-launcher: SIGKILL to the sweep command, pid {process.pid}")

    def _server_outage(self, fault: Fault) -> None:
        self.server.stop(signal.SIGTERM)
        self.sent[fault.kind] += 1
        self.note(f"server-outage: tracking server stopped for {fault.hold_s:.0f} s")
        time.sleep(fault.hold_s)
        self.server.start()
        self.note("server-outage: tracking server back")

    def _full_disk(self, fault: Fault) -> None:
        if not self.disk:
            self.note("full-disk: no tmpfs could be mounted, not sent")
            return
        filler = self.cwd / "multirun" / "filler"
        stats = os.statvfs(filler.parent)
        with contextlib.suppress(OSError), filler.open("wb") as stream:
            for _ in range(stats.f_bavail * stats.f_frsize // 2**20 + 1):
                stream.write(b"\0" * 2**20)
        self.sent[fault.kind] += 1
        self.note(f"full-disk: the output folder's file system is full for {fault.hold_s:.0f} s")
        time.sleep(fault.hold_s)
        filler.unlink()
        self.note("full-disk: space freed")


def experiment_runs(uri: str, experiment: str) -> tuple[object, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], max_results=5000)


def final_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith(("val/", "test/"))}


def check(uri: str, experiment: str, reference: str, jobs: int, reports: tuple[Path, Path]) -> list[str]:
    """Every failed check as one line (empty: all hold); prints the counts."""
    client, runs = experiment_runs(uri, experiment)
    _, reference_runs = experiment_runs(uri, reference)
    problems = []
    parents = [r for r in runs if r.data.tags.get("facebias.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    if [p.info.status for p in parents] != ["FINISHED"]:
        problems.append(f"parents: {[p.info.status for p in parents]} (one FINISHED expected)")
    statuses = Counter(r.info.status for r in children)
    print(f"child runs: {dict(statuses)}")
    if statuses["RUNNING"]:
        problems.append(f"{statuses['RUNNING']} child run(s) left RUNNING")
    finished = Counter(r.data.tags.get("facebias.seed") for r in children if r.info.status == "FINISHED")
    if sorted(finished) != sorted(str(seed) for seed in range(jobs)) or set(finished.values()) != {1}:
        problems.append(f"FINISHED runs per seed: {dict(finished)} (one per job expected)")
    expected = {r.data.tags["facebias.seed"]: r for r in reference_runs if r.data.tags.get("mlflow.parentRunId")}
    records = duplicates = 0
    for run in children:
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            records += len(steps)
            duplicates += len(steps) - len(set(steps))
        if run.info.status != "FINISHED":
            continue
        twin = expected[run.data.tags["facebias.seed"]]
        if final_metrics(run) != final_metrics(twin):
            differ = sorted(k for k in final_metrics(run).keys() | final_metrics(twin).keys()
                            if final_metrics(run).get(k) != final_metrics(twin).get(k))
            problems.append(f"seed {run.data.tags['facebias.seed']}: metrics differ from the reference: {differ[:5]}")
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")]
        reference_epochs = [m.step for m in client.get_metric_history(twin.info.run_id, "epoch/loss")]
        if sorted(epochs) != reference_epochs:
            problems.append(f"seed {run.data.tags['facebias.seed']}: epochs {epochs} vs. {reference_epochs}")
    print(f"metric records in the child runs: {records}; (metric, step) logged twice: {duplicates}")
    if duplicates:
        problems.append(f"{duplicates} (metric, step) record(s) logged twice")
    faulted, uninterrupted = (report_text(folder) for folder in reports)
    if faulted != uninterrupted:
        problems.append("the report differs from the uninterrupted sweep's")
    return problems


def report_text(sweep_dir: Path) -> str:
    """results.md and results.csv of a sweep folder, the parent's run id replaced by a placeholder."""
    parent = json.loads((sweep_dir / "facebias_sweep.json").read_text())["parent_run_id"]
    return "\n".join((sweep_dir / "report" / name).read_text().replace(parent, "<parent>")
                     for name in ("results.md", "results.csv"))


def last_sweep_dir(cwd: Path) -> Path:
    return max(cwd.glob("multirun/*/*/facebias_sweep.json"), key=lambda p: p.stat().st_mtime).parent


def uninterrupted_sweep(cwd: Path, command: list[str], env: dict[str, str]) -> float | None:
    """Run the sweep without faults in `cwd` and return its wall time (None: it failed); a folder where it already
    ran (its time in `uninterrupted_s`, its runs in the same server store) is reused."""
    measured = cwd / "uninterrupted_s"
    if measured.is_file():
        return float(measured.read_text())
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (cwd / "command.log").open("w") as output:
        code = subprocess.run(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT).returncode
    if code != 0:
        return None
    measured.write_text(f"{time.monotonic() - started:.1f}")
    return float(measured.read_text())


def soak(folder: Path, jobs: int, faults: list[Fault], seed: int, extra: list[str] | None = None
         ) -> tuple[list[str], dict]:
    """The reference sweep (run once per `folder`), then the faulted one (its jobs to signal chosen by `seed`, its
    runs in experiment chaos-seed<seed>); returns the failed checks and the figures."""
    extra = extra or []
    server = MlflowServer(folder / "server")
    server.start()
    try:
        env = run_environment(Path(os.environ.get("FACEBIAS_CACHE") or folder / "cache"))
        reference_cwd, faulted_cwd = folder / "reference", folder / f"faulted-seed{seed}"
        reference_s = uninterrupted_sweep(reference_cwd, sweep_command(jobs, server.uri, "chaos-reference", extra), env)
        if reference_s is None:
            return [f"the uninterrupted sweep failed: see {reference_cwd / 'command.log'}"], {}
        print(f"uninterrupted sweep: {reference_s:.0f} s", flush=True)
        experiment = f"chaos-seed{seed}"
        with small_tmpfs(faulted_cwd / "multirun") as mounted:
            run = Soak(sweep_command(jobs, server.uri, experiment, extra), faulted_cwd, env, server, faults, mounted,
                       rng=random.Random(seed))
            faulted_s = run.run()
            problems = check(server.uri, experiment, "chaos-reference", jobs,
                             (last_sweep_dir(faulted_cwd), last_sweep_dir(reference_cwd)))
    finally:
        server.stop()
    figures = {"faults_sent": sum(run.sent.values()), "by_kind": dict(run.sent), "commands": run.commands,
               "reruns": run.commands - 1, "faulted_s": round(faulted_s), "uninterrupted_s": round(reference_s),
               "tmpfs": mounted}
    return problems, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--faults", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mean-gap-s", type=float, default=25.0)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="facebias-chaos-"))
    faults = fault_schedule(args.seed, args.faults, args.mean_gap_s)
    print(f"chaos soak in {folder}: {args.jobs} jobs, {len(faults)} faults, seed {args.seed}", flush=True)
    problems, figures = soak(folder, args.jobs, faults, args.seed)
    print("figures: " + json.dumps(figures))
    for problem in problems:
        print(f"FAILED: {problem}")
    print("all checks hold" if not problems else f"{len(problems)} check(s) failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
