"""The team tracking server of scripts/team_server.sh for tests: MLflow's basic-auth server on PostgreSQL.

`start_team_server(root)` starts it on a free port with its own state folder and PostgreSQL database; `TeamServer`
names it, logs in (`env`), runs SQL in its database (`sql`) and creates a database with a login of its own
(`database_with_login`, for a store reached directly). The `team_server` fixture (tests/conftest.py) starts one per
test session. Starting PostgreSQL needs root on Debian: `cannot_run_daemons` says why a machine cannot.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow_server import free_port

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SERVER_WORKERS = 2
"""Worker processes of the test's tracking server: fewer start faster on a busy 2-core machine."""


def cannot_run_daemons() -> str | None:
    """Why this machine cannot start Slurm or PostgreSQL for a test, or None when it can."""
    if os.geteuid() != 0:
        return "starting Slurm and PostgreSQL needs root (scripts/local_slurm.sh, scripts/team_server.sh)"
    if shutil.which("apt-get") is None or shutil.which("runuser") is None:
        return "scripts/local_slurm.sh and scripts/team_server.sh need a Debian machine (apt-get, runuser)"
    return None


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run scripts/NAME ARGS; its output, or the test fails with it."""
    result = subprocess.run(["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=900,
                            env=env)
    if result.returncode != 0:
        pytest.fail(f"scripts/{name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def postgres(*command: str) -> str:
    """Run a PostgreSQL client program (psql, pg_dump, dropdb, …) as the postgres user; its output."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, check=True,
                          timeout=120).stdout


@dataclass(frozen=True)
class TeamServer:
    uri: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_TRACKING_USERNAME": "admin",
                "MLFLOW_TRACKING_PASSWORD": self.password}

    def sql(self, query: str) -> list[str]:
        """Rows of `query` run on the server's PostgreSQL database, as psql prints them unaligned."""
        return postgres("psql", "-d", self.database, "-Atc", query).splitlines()

    @contextmanager
    def database_with_login(self, password: str) -> Iterator[str]:
        """A fresh database of the server's PostgreSQL, owned by a fresh role that logs in with `password`; yields
        the name of both, and drops them after."""
        name = f"{self.database}_{secrets.token_hex(3)}"
        self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        self.sql(f"CREATE DATABASE {name} OWNER {name}")
        try:
            yield name
        finally:
            postgres("dropdb", "--if-exists", "--force", name)
            self.sql(f"DROP ROLE IF EXISTS {name}")


@contextmanager
def start_team_server(root: Path) -> Iterator[TeamServer]:
    """scripts/team_server.sh on a free port, with the state folder `root` and its own PostgreSQL database (dropped
    after)."""
    database = f"facebias_test_{secrets.token_hex(4)}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "FACEBIAS_TEAM_SERVER_DIR": str(root), "FACEBIAS_TEAM_SERVER_PORT": str(free_port()),
           "FACEBIAS_TEAM_SERVER_DB": database, "FACEBIAS_TEAM_SERVER_WORKERS": str(SERVER_WORKERS)}
    uri = run_script("team_server.sh", "start", env=env).strip().splitlines()[-1]
    try:
        yield TeamServer(uri, (root / "admin_password").read_text().strip(), database)
    finally:
        run_script("team_server.sh", "stop", "--keep-database", env=env)
        for name in (database, f"{database}_auth"):
            subprocess.run(["runuser", "-u", "postgres", "--", "dropdb", "--if-exists", "--force", name], timeout=60)
