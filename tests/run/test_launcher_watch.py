"""A sweep job started by its launcher dies with it (facebias.run.launcher_watch), in real processes, no TensorFlow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from facebias.run.launcher_watch import LAUNCHER_GROUP_ENV, LAUNCHER_PID_ENV

LAUNCHER = """
import subprocess, sys, time
from facebias.run.launcher_watch import mark_launcher
mark_launcher()
job = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(job.pid, flush=True)
time.sleep(120)
"""
LATE_JOB = """
import os, time
from facebias.run.launcher_watch import end_with_launcher
launcher = os.getppid()
print("started", flush=True)
while os.getppid() == launcher:
    time.sleep(0.05)
end_with_launcher()
print("trained", flush=True)
"""
"""A job that reaches `end_with_launcher` only after its launcher died (joblib handed it the task just before)."""
JOB = """
import time
from facebias.run.launcher_watch import end_with_launcher
print(end_with_launcher(), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone_within(pid: int, limit_s: float = 30.0) -> bool:
    """Whether process `pid` has ended (or is a zombie) within `limit_s` seconds."""
    deadline = time.monotonic() + limit_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def test_a_job_ends_within_seconds_of_its_launchers_sigkill() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, JOB], stdout=subprocess.PIPE, text=True)
    try:
        job = int(launcher.stdout.readline())
        assert launcher.stdout.readline().strip() == "True", "the job watches its launcher"
        assert _alive(job)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=30)
        assert _gone_within(job), "the orphaned job still runs"
    finally:
        launcher.kill()
        launcher.stdout.close()


def test_a_process_that_is_not_the_launchers_child_is_not_watched() -> None:
    env = {**os.environ, LAUNCHER_PID_ENV: str(os.getpid() + 10**6)}
    result = subprocess.run([sys.executable, "-c", "from facebias.run.launcher_watch import end_with_launcher; "
                             "print(end_with_launcher())"], capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip() == "False"


def test_a_job_that_starts_after_its_launcher_died_ends_before_it_trains() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, LATE_JOB], stdout=subprocess.PIPE, text=True)
    try:
        job = int(launcher.stdout.readline())
        assert launcher.stdout.readline().strip() == "started"
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=30)
        rest = launcher.stdout.read()
        assert "trained" not in rest, "the orphaned job went on to train"
        assert _gone_within(job), "the job closed its output but goes on running"
    finally:
        launcher.kill()
        launcher.stdout.close()


def test_a_job_in_another_session_is_not_taken_for_an_orphan_when_the_launcher_is_gone() -> None:
    env = {**os.environ, LAUNCHER_PID_ENV: str(os.getpid() + 10**6), LAUNCHER_GROUP_ENV: str(os.getpgid(0))}
    result = subprocess.run([sys.executable, "-c", "from facebias.run.launcher_watch import end_with_launcher; "
                             "print(end_with_launcher())"], capture_output=True, text=True, env=env, timeout=60,
                            start_new_session=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
