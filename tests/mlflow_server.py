"""A real `mlflow server` for tests, on 127.0.0.1: SQLite backend, artifacts served by the server, optional basic-auth.

`MlflowServer(root).start()` runs `python -m mlflow server` in its own process group and waits for `/health`;
`stop()` ends that group (the server and its workers) and can be followed by `start()` again on the same port and
store, as an operator restarting it would. The server's output goes to `<root>/server.log`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 5.0
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""No job runner (huey consumers, for GenAI jobs facebias never submits): fewer processes to start per server."""
AUTH_CACHE_S = 60
"""MLflow's `auth_cache_ttl_seconds`, as scripts/team_server.sh sets it: a worker checks a login's password hash
(scrypt, about 0.1 s of CPU) once a minute instead of on every request."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """One tracking server over `<root>/mlflow.db` and `<root>/artifacts/`; with `auth`, MLflow's basic-auth app."""

    def __init__(self, root: Path, auth: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.auth = auth
        self.admin_password = secrets.token_urlsafe(16) if auth else None
        self.process: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        env.update(SERVER_ENVIRONMENT)
        if self.auth:
            config = self.root / "basic_auth.ini"
            config.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{self.root / 'basic_auth.db'}\n"
                f"admin_username = admin\nadmin_password = {self.admin_password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                f"auth_cache_ttl_seconds = {AUTH_CACHE_S}\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)
        return env

    def start(self) -> None:
        """Start the server and wait until `/health` answers; AssertionError with the log's tail if it does not."""
        command = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts",
                   "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                   "--artifacts-destination", str(self.root / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        if self.auth:
            command += ["--app-name", "basic-auth"]
        with (self.root / "server.log").open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self._environment(),
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.healthy():
                return
            time.sleep(0.25)
        self.stop()
        log_tail = (self.root / "server.log").read_text()[-3000:]
        raise AssertionError(f"mlflow server on port {self.port} did not become healthy:\n{log_tail}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, how: signal.Signals = signal.SIGKILL) -> None:
        """Send `how` to the server's process group, then SIGKILL to what is left after STOP_TIMEOUT_S."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, how)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None
