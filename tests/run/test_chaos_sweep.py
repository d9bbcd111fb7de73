"""The chaos soak, shortened: a 2-job quick sweep under 4 faults ends as the same sweep run without them.

benchmarks/chaos_sweep.py runs the full soak (12 jobs, 15 seeded faults); here the same code runs a fixed schedule
that sends each kind of fault that ends a command or the server once: SIGKILL to a job, the tracking server stopped
for 5 s, SIGKILL to the sweep's launcher, and a full disk under the output folder (a tmpfs, so root only; elsewhere a
SIGTERM to a job instead). The sweep command is rerun until it succeeds, then the store is checked against the
uninterrupted sweep's: one FINISHED run per job and none RUNNING, the same val/test metrics bit for bit, no
(metric, step) twice, the same epochs, the same report.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from conftest import QUICK_GRID_TRAINER, REPO_ROOT

SPEC = importlib.util.spec_from_file_location("chaos_sweep", REPO_ROOT / "benchmarks" / "chaos_sweep.py")
chaos = importlib.util.module_from_spec(SPEC)
sys.modules["chaos_sweep"] = chaos
SPEC.loader.exec_module(chaos)

JOBS = 2
FAULTS = [chaos.Fault(3.0, "kill-job"), chaos.Fault(3.0, "server-outage", 5.0), chaos.Fault(3.0, "kill-launcher"),
          chaos.Fault(3.0, "full-disk" if os.geteuid() == 0 else "term-job", 5.0)]
"""One of each kind that can end a command, a few seconds apart (each job fault waits for a job to be training)."""


@pytest.mark.slow
@pytest.mark.soak
def test_a_sweep_under_faults_ends_as_the_uninterrupted_sweep(tmp_path: Path) -> None:
    problems, figures = chaos.soak(tmp_path, JOBS, FAULTS, seed=0, extra=QUICK_GRID_TRAINER[1:])
    assert problems == [], figures
    assert figures["faults_sent"] == len(FAULTS), figures
    assert figures["reruns"] >= 1, "the killed launcher ends a command"
