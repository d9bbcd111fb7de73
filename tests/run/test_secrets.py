"""No secret reaches a record: a canary password in the tracking URI, then every byte facebias produced is searched.

The URI names a real PostgreSQL store (a database of the team server's PostgreSQL, tests/team_server.py, with a role
whose password is the canary), used four ways: a run killed after its second epoch and resumed (`resume=auto`), a
two-job sweep, and an offline run — recorded to a tracking server (tests/mlflow_server.py) reached with the canary in
the URI's user part, which goes away mid-run — uploaded into the PostgreSQL store with `python -m facebias.sync`.
Then the store's tables (pg_dump), every artifact and every file under the folders the commands ran in (outputs,
sweep folders, the offline journal, the server's store), and everything the commands printed, are searched for the
canary and for the base64 login a client would send: none holds it. The records show the URI as `…:***@…`.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import QUICK_DATA
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer
from team_server import TeamServer, postgres

from facebias.identity import SWEEP_COMMAND_TAG
from facebias.tracking.offline import OFFLINE_FOLDER

pytestmark = pytest.mark.slow
"""Four training processes, a sync and a tracking server."""

CANARY = "CanaryPw" + os.urandom(8).hex()
EPOCH_LINE = re.compile(r"^\d+/\d+ - ")
"""Keras' line at the end of an epoch (trainer.verbose=2)."""
QUICK = ["trainer=smoke", *QUICK_DATA, "trainer.verbose=2", "trainer.max_eval_samples=32",
         "statistics.bootstrap_resamples=100", "statistics.permutations=100"]
THREE_EPOCHS = ["trainer.max_epochs_cap=3", "schedule.stages.0.max_epochs=3", "schedule.stages.0.patience=3"]
"""A run killed at the end of its second epoch has a checkpoint of its first to resume from."""
WARNING = "carries a password or token: facebias connects with it but records and prints it as ***"


@dataclass(frozen=True)
class Produced:
    """What the commands produced: the folders they wrote, what they printed (by command), the store's dump."""

    folders: list[Path]
    printed: dict[str, str]
    dump: str
    uri: str
    shown: str
    offline_shown: str


def _start(cwd: Path, *args: str, module: str = "facebias.train") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _read_epochs(process: subprocess.Popen, count: int) -> list[str]:
    """The lines `process` printed up to its `count`-th epoch line."""
    lines, seen = [], 0
    for line in process.stdout:
        lines.append(line)
        seen += bool(EPOCH_LINE.match(line))
        if seen == count:
            return lines
    pytest.fail(f"the run ended before its epoch {count}:\n{''.join(lines[-40:])}")


def _finish(process: subprocess.Popen, before: list[str] | None = None) -> str:
    """Everything `process` printed (`before` it was read on), once it ended with exit status 0."""
    rest, _ = process.communicate(timeout=900)
    output = "".join(before or []) + rest
    assert process.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def produced(team_server: TeamServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Produced]:
    cwd = tmp_path_factory.mktemp("canary")
    server = MlflowServer(tmp_path_factory.mktemp("canary-server"))
    with team_server.database_with_login(CANARY) as name:
        uri = f"postgresql+psycopg2://{name}:{CANARY}@127.0.0.1:5432/{name}"
        run = [*QUICK, *THREE_EPOCHS, f"tracking.uri={uri}", "tracking.experiment=run"]
        killed = _start(cwd, *run)
        server.start()  # while the run trains
        printed = {"killed": "".join(_read_epochs(killed, 2))}
        killed.send_signal(signal.SIGKILL)
        printed["killed"] += killed.communicate(timeout=60)[0]
        resumed = _start(cwd, *run, "resume=auto")
        sweep = _start(cwd, "-m", *QUICK, "seed=0,1", f"tracking.uri={uri}", "tracking.experiment=sweep")
        offline = _start(cwd, *QUICK, *THREE_EPOCHS, f"tracking.uri=http://{name}:{CANARY}@127.0.0.1:{server.port}",
                         "tracking.experiment=offline", "tracking.offline_after_s=2")
        before = _read_epochs(offline, 1)
        server.stop()
        printed["offline"] = _finish(offline, before)
        printed["resumed"], printed["sweep"] = _finish(resumed), _finish(sweep)
        (folder,) = cwd.glob(f"multirun/single/*/*/{OFFLINE_FOLDER}")
        printed["sync"] = _finish(_start(cwd, f"folder={folder}", f"tracking_uri={uri}", module="facebias.sync"))
        dump = postgres("pg_dump", "--no-owner", "-d", name)
        yield Produced([cwd, server.root], printed, dump, uri, uri.replace(f":{CANARY}@", ":***@"),
                       f"http://{name}:***@127.0.0.1:{server.port}")


def _holding(data: bytes, secrets: list[bytes]) -> bool:
    return any(secret in data for secret in secrets)


def test_no_byte_facebias_produced_holds_the_canary(produced: Produced) -> None:
    login = produced.shown.split("//")[1].split(":")[0]
    secrets = [CANARY.encode(), base64.b64encode(f"{login}:{CANARY}".encode())]
    assert _holding(produced.uri.encode(), secrets), "the search finds the canary where it is"
    files = [path for folder in produced.folders for path in folder.rglob("*") if path.is_file()]
    assert len(files) > 100, "the runs' outputs, artifacts and the server's store are searched"
    assert [str(path) for path in files if _holding(path.read_bytes(), secrets)] == []
    assert [name for name, text in produced.printed.items() if _holding(text.encode(), secrets)] == []
    assert "CREATE TABLE public.runs" in produced.dump and "COPY public.params" in produced.dump
    assert not _holding(produced.dump.encode(), secrets)


def test_the_records_show_the_uri_without_its_password(produced: Produced) -> None:
    client = MlflowClient(produced.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("run").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["tracking.uri"] == produced.shown
    assert f"resuming run {run.info.run_id} from its checkpoint" in produced.printed["resumed"]
    (view,) = [line for line in produced.printed["resumed"].splitlines() if line.startswith("view it: ")]
    assert produced.shown in view
    sweep = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    (parent,) = [found for found in sweep if SWEEP_COMMAND_TAG in found.data.tags]
    assert f"tracking.uri={produced.shown}" in parent.data.tags[SWEEP_COMMAND_TAG]
    assert sorted(found.info.status for found in sweep) == ["FINISHED"] * 3
    (synced,) = client.search_runs([client.get_experiment_by_name("offline").experiment_id])
    assert synced.info.status == "FINISHED" and synced.data.params["tracking.uri"] == produced.offline_shown
    assert f"to {produced.shown}: created as run {synced.info.run_id}" in produced.printed["sync"]


def test_each_command_warns_once_how_to_keep_the_password_off_the_command_line(produced: Produced) -> None:
    counts = {name: produced.printed[name].count(WARNING) for name in ("killed", "resumed", "sweep", "offline")}
    assert counts == {"killed": 1, "resumed": 1, "sweep": 1, "offline": 1}
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in produced.printed["sweep"]
