"""The team server's database fails while a run logs: PostgreSQL restarted, then stopped for 20 s.

scripts/team_server.sh runs on a PostgreSQL cluster of its own (FACEBIAS_TEAM_SERVER_PG_CLUSTER), so restarting and
stopping it touches no other test's database. While the database is away MLflow's server answers 503; the run keeps
its records, says so once per outage, sends them when the database is back and ends FINISHED with every epoch's
curves logged exactly once. Skipped only on a machine that cannot run PostgreSQL (not root, or not Debian).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import QUICK_DATA, REPO_ROOT
from mlflow.tracking import MlflowClient
from mlflow_server import free_port

PG_VERSION = "15"
EPOCHS = 12
STOP_S = 20.0
EPOCH_LINE = re.compile(r"^\d+/\d+ - ")
OUTAGE = "is unreachable (HTTP 503: the server or its database is unavailable): keeping the run's records"
BACK = "is back after"


@dataclass(frozen=True)
class Database:
    """The team server and the PostgreSQL cluster under it."""

    uri: str
    password: str
    cluster: str

    def pg_ctl(self, action: str) -> None:
        subprocess.run(["pg_ctlcluster", PG_VERSION, self.cluster, action], check=True, timeout=120)


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if os.geteuid() != 0 or shutil.which("apt-get") is None or shutil.which("runuser") is None:
        pytest.skip("scripts/team_server.sh needs root on a Debian machine (it installs and starts PostgreSQL)")
    root = tmp_path_factory.mktemp("team-server-db")
    name = f"facebias_test_{secrets.token_hex(4)}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "FACEBIAS_TEAM_SERVER_DIR": str(root), "FACEBIAS_TEAM_SERVER_PORT": str(free_port()),
           "FACEBIAS_TEAM_SERVER_DB": name, "FACEBIAS_TEAM_SERVER_PG_CLUSTER": name,
           "FACEBIAS_TEAM_SERVER_PG_PORT": str(free_port()), "FACEBIAS_TEAM_SERVER_WORKERS": "2"}
    script = ["bash", str(REPO_ROOT / "scripts" / "team_server.sh")]
    try:
        started = subprocess.run([*script, "start"], capture_output=True, text=True, env=env, timeout=900)
        assert started.returncode == 0, started.stdout + started.stderr
        yield Database(started.stdout.strip().splitlines()[-1], (root / "admin_password").read_text().strip(), name)
    finally:
        subprocess.run([*script, "stop"], capture_output=True, env=env, timeout=300)
        subprocess.run(["pg_dropcluster", "--stop", PG_VERSION, name], capture_output=True, timeout=300)


def _wait_for_epochs(lines: list[str], count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 600
    while sum(bool(EPOCH_LINE.match(line)) for line in lines) < count:
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines[-40:])
        time.sleep(0.1)


@pytest.mark.slow
def test_a_restarted_and_a_stopped_database_lose_nothing_and_are_said_once_each(team_server: Database,
                                                                             tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": team_server.password}
    process = subprocess.Popen(
        [sys.executable, "-m", "facebias.train", "trainer=smoke", *QUICK_DATA, f"tracking.uri={team_server.uri}",
         "tracking.experiment=database", "trainer.verbose=2", "trainer.max_epochs_cap=null",
         f"schedule.stages.0.max_epochs={EPOCHS}", f"schedule.stages.0.patience={EPOCHS}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        _wait_for_epochs(lines, 2, process)
        team_server.pg_ctl("restart")
        _wait_for_epochs(lines, 6, process)
        team_server.pg_ctl("stop")
        stopped = time.monotonic()
        time.sleep(STOP_S)
        team_server.pg_ctl("start")
        assert process.wait(timeout=600) == 0, "".join(lines[-60:])
        reader.join(timeout=60)
    finally:
        process.kill()
    output = "".join(lines)
    assert time.monotonic() - stopped >= STOP_S
    outages, backs = output.count(OUTAGE), output.count(BACK)
    assert outages in (1, 2) and backs == outages, output[-4000:]
    client = MlflowClient(team_server.uri)
    env_keys = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    os.environ.update({key: env[key] for key in env_keys})
    try:
        experiment = client.get_experiment_by_name("database")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        for key in ("stage1/loss", "stage1/val_mae", "epoch/loss"):
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == list(range(EPOCHS))
        assert {"test/mae", "val/mae"} <= set(run.data.metrics)
    finally:
        for key in env_keys:
            os.environ.pop(key, None)
