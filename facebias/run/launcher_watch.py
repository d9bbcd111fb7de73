"""A sweep job running in a process its launcher started ends when that launcher dies.

Local launchers (joblib's worker processes, submitit's local processes) start each job as a child of the sweep
command. If that command is killed (SIGKILL, a lost terminal) its children live on as orphans, and the rerun of the
same sweep would train a second run of each of their configurations beside them: two FINISHED runs of one job. So
the launcher names itself in the environment its jobs inherit (`mark_launcher`), and a job whose parent is that
launcher watches it (`end_with_launcher`): once it is gone the job's process is killed as the launcher was, leaving
its run for the rerun to find dead, mark KILLED and resume. A job that is not the launcher's child (a Slurm job, or
a job run inside the launcher's own process) is not watched.

A job can also start after its launcher died: joblib hands a task to a worker process, the launcher is killed before
the worker picks it up, and the worker — already an orphan, no longer the launcher's child — would train it while the
rerun trains the same configuration (a chaos soak caught two FINISHED runs of each job this way). So the launcher
names its process group too, and a job in that group whose launcher is gone ends before it opens a run. A Slurm job
runs in a session of its own and is never taken for an orphan.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

LAUNCHER_PID_ENV = "FACEBIAS_SWEEP_LAUNCHER_PID"
LAUNCHER_GROUP_ENV = "FACEBIAS_SWEEP_LAUNCHER_PGID"
POLL_S = 1.0

log = logging.getLogger(__name__)
_watching: set[int] = set()


def mark_launcher() -> None:
    """In the sweep command's process, before it launches jobs: name it, and its process group, as their launcher."""
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())
    os.environ[LAUNCHER_GROUP_ENV] = str(os.getpgid(0))


def end_with_launcher() -> bool:
    """In a job: if this process is a child of the sweep's launcher, watch the launcher (once per process) and kill
    this process when it is gone; a job of the launcher's process group whose launcher is already gone is killed at
    once. Returns whether the process is watched."""
    named = os.environ.get(LAUNCHER_PID_ENV, "")
    if not named.isdigit() or int(named) == os.getpid():
        return False
    launcher = int(named)
    if launcher != os.getppid():
        if _orphaned_by(launcher):
            _end(launcher)
        return False
    if os.getpid() not in _watching:
        _watching.add(os.getpid())
        threading.Thread(target=_watch, args=(launcher,), name="facebias-launcher-watch", daemon=True).start()
    return True


def _orphaned_by(launcher: int) -> bool:
    """Whether this process belongs to the launcher's process group and the launcher is gone (a zombie is gone)."""
    group = os.environ.get(LAUNCHER_GROUP_ENV, "")
    if not group.isdigit() or int(group) != os.getpgid(0):
        return False
    try:
        state = Path(f"/proc/{launcher}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _watch(launcher: int) -> None:
    while os.getppid() == launcher:
        time.sleep(POLL_S)
    _end(launcher)


def _end(launcher: int) -> None:
    log.warning("the sweep's launcher (pid %d) is gone: this job's process ends with it; rerun the sweep command to "
                "resume its run", launcher)
    os.kill(os.getpid(), signal.SIGKILL)
