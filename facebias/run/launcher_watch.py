"""A sweep job running in a process its launcher started ends when that launcher dies.

Local launchers (joblib's worker processes, submitit's local processes) start each job as a child of the sweep
command. If that command is killed (SIGKILL, a lost terminal) its children live on as orphans, and the rerun of the
same sweep would train a second run of each of their configurations beside them: two FINISHED runs of one job. So
the launcher names itself in the environment its jobs inherit (`mark_launcher`), and a job whose parent is that
launcher watches it (`end_with_launcher`): once it is gone the job's process is killed as the launcher was, leaving
its run for the rerun to find dead, mark KILLED and resume. A job that is not the launcher's child (a Slurm job, or
a job run inside the launcher's own process) is not watched.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

LAUNCHER_PID_ENV = "FACEBIAS_SWEEP_LAUNCHER_PID"
POLL_S = 1.0

log = logging.getLogger(__name__)
_watching: set[int] = set()


def mark_launcher() -> None:
    """In the sweep command's process, before it launches jobs: name it as their launcher."""
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())


def end_with_launcher() -> bool:
    """In a job: if this process is a child of the sweep's launcher, watch the launcher (once per process) and kill
    this process when it is gone. Returns whether the process is watched."""
    named = os.environ.get(LAUNCHER_PID_ENV, "")
    if not named.isdigit() or int(named) != os.getppid() or int(named) == os.getpid():
        return False
    if os.getpid() not in _watching:
        _watching.add(os.getpid())
        threading.Thread(target=_watch, args=(int(named),), name="facebias-launcher-watch", daemon=True).start()
    return True


def _watch(launcher: int) -> None:
    while os.getppid() == launcher:
        time.sleep(POLL_S)
    log.warning("the sweep's launcher (pid %d) is gone: this job's process ends with it; rerun the sweep command to "
                "resume its run", launcher)
    os.kill(os.getpid(), signal.SIGKILL)
