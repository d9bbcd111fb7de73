"""Liveness of a run: a lock file in its output folder, held (fcntl.flock) by the process running it.

The file, `<output_dir>/run.lock`, says which process holds it (host, pid, start time). The kernel releases a
flock when its process dies, however it dies (SIGKILL included), so a free lock means nobody runs that folder any
more and a held one means a live process does: that is how `resume` tells a dead run from one still training.
Taking the lock is also how a process claims a run: of two processes resuming the same run, one gets the lock and
the other is told the run is still running. The file is left in place when the run ends (locks follow the file,
so it is never replaced or removed while it could be locked).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from facebias.errors import FacebiasError
from facebias.identity import KILLED_REASON_TAG, OUTPUT_DIR_TAG, PARENT_RUN_TAG
from facebias.tracking.queries import unfinished_runs
from facebias.tracking.runs import end_run
from facebias.tracking.store import TrackingStore

LOCK_FILE = "run.lock"


class RunStillRunningError(FacebiasError):
    """A run's lock is held by a live process: it must not be resumed or reused."""


@dataclass(frozen=True)
class Holder:
    """The process that holds (or last held) a run's lock."""

    host: str
    pid: int
    started: str

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started}"


class RunLock:
    """A held lock on a run's output folder; `release` (or the end of the process) frees it."""

    def __init__(self, path: Path, stream: IO[str]) -> None:
        self.path = path
        self._stream = stream
        self.holder = Holder(socket.gethostname(), os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        stream.seek(0)
        stream.truncate()
        stream.write(json.dumps({"host": self.holder.host, "pid": self.holder.pid, "started": self.holder.started}))
        stream.flush()

    def release(self) -> None:
        """Free the lock (idempotent)."""
        if not self._stream.closed:
            fcntl.flock(self._stream, fcntl.LOCK_UN)
            self._stream.close()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def lock_path(output_dir: Path) -> Path:
    """Where a run's lock file lives."""
    return output_dir / LOCK_FILE


def read_holder(output_dir: Path) -> Holder | None:
    """Who holds (or last held) the lock of `output_dir`, as its file says; None if it says nothing readable."""
    try:
        facts = json.loads(lock_path(output_dir).read_text())
        return Holder(str(facts["host"]), int(facts["pid"]), str(facts["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def try_lock(output_dir: Path) -> RunLock | Holder:
    """Take the lock of `output_dir` (creating the folder and file), or, if a live process holds it, that holder.

    Never waits: exactly one of several processes trying at once gets the lock.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    stream = lock_path(output_dir).open("a+")
    try:
        fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.close()
        return read_holder(output_dir) or Holder("unknown", 0, "unknown")
    return RunLock(lock_path(output_dir), stream)


def still_running(run_id: str, holder: Holder) -> str:
    """The sentence for a run whose lock a live process holds."""
    return (f"run {run_id} is still running ({holder.describe()}): it is not resumed; wait for it to end, or stop "
            "that process first.")


def lock_run(output_dir: Path, run_id: str | None = None) -> RunLock:
    """The lock of `output_dir` for this process; RunStillRunningError (one sentence) if a live process holds it."""
    lock = try_lock(output_dir)
    if isinstance(lock, Holder):
        raise RunStillRunningError(still_running(run_id, lock) if run_id else
                                   f"the output folder {output_dir} is in use by a live run ({lock.describe()}): "
                                   "give this run another folder (hydra.run.dir=…).")
    return lock


def claim_dead_run(store: TrackingStore, run_id: str, status: str, folder: Path, found_by: str) -> RunLock | Holder:
    """Take the lock of a run's folder; if that worked its process is dead, and a run still RUNNING is marked KILLED
    with the reason (`found_by` says who found it). Returns the lock, or the live process that holds it."""
    last = read_holder(folder)
    lock = try_lock(folder)
    if isinstance(lock, RunLock) and status == "RUNNING":
        died = f"its process ({last.describe()}) died" if last else "its process died"
        end_run(store, run_id, "KILLED",
                {KILLED_REASON_TAG: f"{died} without ending the run; found by {found_by} ({lock.holder.describe()})"})
    return lock


def mark_dead_children(store: TrackingStore, parent_run_id: str, found_by: str) -> list[str]:
    """Mark KILLED every RUNNING child of `parent_run_id` whose process died (its folder is here and its lock free);
    returns their ids. A child whose folder is on another machine is left alone: whether it lives cannot be told."""
    marked = []
    for run_id, status, folder in unfinished_runs(store, {PARENT_RUN_TAG: parent_run_id}, OUTPUT_DIR_TAG):
        if status != "RUNNING" or not folder or not Path(folder).is_dir():
            continue
        lock = claim_dead_run(store, run_id, status, Path(folder), found_by)
        if isinstance(lock, RunLock):
            lock.release()
            marked.append(run_id)
    return marked
