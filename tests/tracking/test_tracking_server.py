"""Tracking server faults: a real `mlflow server`, one that is down, one that goes away mid-run, one with basic-auth.

The servers run on 127.0.0.1 with a SQLite backend and serve the artifacts (tests/mlflow_server.py). The first tests
drive `MlflowRecorder` with a fake client (fast); the others run `python -m facebias.train` as a user would.
No run may be left RUNNING: every test that touches a store checks it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import IMPORTTIME, QUICK_DATA, TENSORFLOW, imported_packages, last_message
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer, free_port

from facebias.errors import TrackingError
from facebias.sync import main as sync_main
from facebias.tracking.offline import OFFLINE_FOLDER, RunJournal
from facebias.tracking.recorder import MlflowRecorder
from facebias.tracking.store import open_client
from facebias.tracking.sync import sync_offline_run

SMOKE = ["trainer=smoke", *QUICK_DATA]
EPOCH_LINE = re.compile(r"^\d+/\d+ - ")  # Keras' line at the end of an epoch (trainer.verbose=2)
ARTIFACTS = {"config.yaml", "dataset_card.md", "history.csv", "learning_curves.png", "group_mae.csv",
             "predictions_val.csv", "predictions_test.csv"}
OUTAGE_S = 15

pytestmark = pytest.mark.slow
"""Every test here starts a real mlflow server process."""


class FakeClient:
    """Stands in for MlflowClient: records the calls it accepts; while `down`, fails as an unreachable server."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[tuple[str, object]] = []

    def _call(self, name: str, payload: object) -> None:
        if self.down:
            raise MlflowException("API request failed") from requests.ConnectionError(ConnectionRefusedError(111, ""))
        if payload == "refuse":
            raise MlflowException("INVALID_PARAMETER_VALUE: bad value")
        self.calls.append((name, payload))

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        self._call("log_batch", [m.key for m in metrics] + [p.key for p in params] + [t.key for t in tags])

    def log_artifacts(self, run_id: str, folder: str) -> None:
        self._call("log_artifacts", folder)

    def log_artifact(self, run_id: str, file: str) -> None:
        self._call("log_artifact", file)

    def log_inputs(self, run_id: str, datasets) -> None:
        self._call("log_inputs", len(datasets))

    def set_terminated(self, run_id: str, status: str, end_time: int) -> None:
        self._call("set_terminated", status)


def _recorder(tmp_path: Path, offline_after_s: float = 60.0) -> tuple[MlflowRecorder, FakeClient]:
    client = FakeClient()
    journal = RunJournal({"format": "facebias-offline-run/1", "tracking_uri": "fake://tracking", "run_id": "r1",
                          "experiment_name": "facebias", "run_name": "run", "start_time": 1, "status": "RUNNING"})
    recorder = MlflowRecorder(client, "r1", "fake://tracking", "1", journal, tmp_path / OFFLINE_FOLDER,
                              offline_after_s)
    return recorder, client


def test_records_made_while_the_server_is_down_are_sent_in_order_when_it_is_back(tmp_path: Path) -> None:
    recorder, client = _recorder(tmp_path)
    recorder.log_metrics({"epoch/loss": 1.0}, step=0)
    client.down = True
    recorder.log_metrics({"epoch/loss": 0.5}, step=1)
    recorder.set_tags({"facebias.dataset_digest": "abc"})
    assert len(recorder.queue) == 2
    client.down = False
    recorder.next_attempt = 0.0  # the backoff has passed
    recorder.terminate("FINISHED")
    assert [name for name, _ in client.calls] == ["log_batch", "log_batch", "log_batch", "set_terminated"]
    assert client.calls[-1] == ("set_terminated", "FINISHED")
    assert not recorder.queue and not recorder.offline and not (tmp_path / OFFLINE_FOLDER).exists()


def test_a_server_away_past_the_limit_makes_the_run_offline_with_everything_it_recorded(tmp_path: Path) -> None:
    recorder, client = _recorder(tmp_path, offline_after_s=0)
    recorder.log_params({"seed": "0"})
    recorder.log_metrics({"epoch/loss": 1.0}, step=0)
    client.down = True
    recorder.log_metrics({"epoch/loss": 0.5}, step=1)
    assert recorder.offline
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "history.csv").write_text("epoch,loss\n")
    recorder.log_artifacts(artifacts)
    recorder.terminate("FINISHED")
    folder = tmp_path / OFFLINE_FOLDER
    journal = RunJournal.load(folder)
    assert journal.info["status"] == "FINISHED" and journal.info["end_time"]
    assert journal.params == {"seed": "0"}
    assert [(m["step"], m["value"]) for m in journal.metrics] == [(0, 1.0), (1, 0.5)]
    assert (folder / "artifacts" / "history.csv").read_text() == "epoch,loss\n"
    assert f"python -m facebias.sync folder={folder}" in recorder.view_hint()


def test_ctrl_c_while_the_server_is_down_goes_offline_at_once_as_killed(tmp_path: Path) -> None:
    recorder, client = _recorder(tmp_path, offline_after_s=300)
    client.down = True
    recorder.log_metrics({"epoch/loss": 1.0})
    recorder.terminate("KILLED", wait=False)
    assert recorder.offline
    assert RunJournal.load(tmp_path / OFFLINE_FOLDER).info["status"] == "KILLED"


def test_a_refused_record_fails_with_one_sentence_and_does_not_block_the_end_of_the_run(tmp_path: Path) -> None:
    recorder, client = _recorder(tmp_path)
    with pytest.raises(TrackingError, match=r"^MLflow could not log an artifact for run r1 at fake://tracking"):
        recorder.log_artifact("refuse")
    recorder.terminate("FAILED")
    assert client.calls[-1] == ("set_terminated", "FAILED")


# --- against real servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A plain tracking server for this module; tests that stop it start it again."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A tracking server with MLflow's basic-auth app; its admin password is generated."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-auth-server"), auth=True)
    server.start()
    yield server
    server.stop()


def _command(cwd: Path, module: str, *args: str, env: dict[str, str] | None = None,
             python_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python_options, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, env=env or os.environ.copy(), timeout=600)


def _train(cwd: Path, uri: str, *overrides: str, env: dict[str, str] | None = None,
           python_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return _command(cwd, "facebias.train", *SMOKE, f"tracking.uri={uri}", *overrides, env=env,
                    python_options=python_options)


def _popen_train(cwd: Path, uri: str, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "facebias.train", *SMOKE, f"tracking.uri={uri}", "trainer.verbose=2", *overrides],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )


def _read_until_first_epoch(process: subprocess.Popen) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if EPOCH_LINE.match(line):
            return lines
    pytest.fail("training ended without logging an epoch:\n" + "".join(lines[-40:]))


def _drain(process: subprocess.Popen, lines: list[str]) -> threading.Thread:
    """Keep reading the process's output in the background, so that it never blocks on a full pipe."""
    thread = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    thread.start()
    return thread


def _output_dir(output: str) -> Path:
    return Path(re.search(r"^outputs: (.+)$", output, re.MULTILINE).group(1))


def _single_run(client: MlflowClient, experiment: str):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return runs[0]


def _assert_nothing_running(client: MlflowClient) -> None:
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert [r.info.run_id for r in client.search_runs(experiments, "attributes.status = 'RUNNING'")] == []


def _assert_complete(client: MlflowClient, run, epochs: int | None = None) -> None:
    """FINISHED, with the params, every epoch of the curves, the final metrics, the artifacts and its model (one
    READY LoggedModel, the run's test/mae linked to it)."""
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["backbone.name"] == "small_cnn"
    assert run.data.tags["facebias.dataset_digest"]
    recorded = int(run.data.metrics["stage1/epochs"])
    assert epochs is None or recorded == epochs
    for key in ("stage1/loss", "stage1/val_mae", "epoch/loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == list(range(recorded))
    assert {"test/mae", "val/mae", "val/age_bias"} <= set(run.data.metrics)
    assert {artifact.path for artifact in client.list_artifacts(run.info.run_id)} >= ARTIFACTS
    (model,) = client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
    assert model.status == LoggedModelStatus.READY and model.name == "model"
    assert {m.key: m.value for m in model.metrics}["test/mae"] == run.data.metrics["test/mae"]
    assert "MLmodel" in {artifact.path for artifact in client.list_logged_model_artifacts(model.model_id)}


def test_an_unreachable_server_fails_at_once_before_any_data_is_loaded(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    cache = tmp_path / "cache"
    result = _train(tmp_path, uri, env={**os.environ, "FACEBIAS_CACHE": str(cache)}, python_options=IMPORTTIME)
    assert result.returncode == 1
    assert last_message(result.stderr) == (
        f"error: cannot reach the MLflow tracking server at {uri} (connection refused): start it, or point "
        "tracking.uri (or MLFLOW_TRACKING_URI) at a running server."
    )
    assert not cache.exists(), "the data was loaded or generated"
    assert "synthetic" not in result.stdout + result.stderr
    assert not imported_packages(result.stderr) & TENSORFLOW, "the error needs no TensorFlow"


def test_a_server_outage_in_the_middle_of_training_loses_nothing(server, tmp_path: Path) -> None:
    epochs = 40
    process = _popen_train(tmp_path, server.uri, "tracking.experiment=outage", "trainer.max_epochs_cap=null",
                           f"schedule.stages.0.max_epochs={epochs}", f"schedule.stages.0.patience={epochs}")
    try:
        lines = _read_until_first_epoch(process)
        reader = _drain(process, lines)
        stopped_at = time.monotonic()
        server.stop(signal.SIGTERM)
        assert process.poll() is None, "training ended before the outage"
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        server.start()
        assert process.wait(timeout=600) == 0, "".join(lines[-60:])
        reader.join(timeout=60)
    finally:
        process.kill()
        if not server.healthy():
            server.start()
    output = "".join(lines)
    assert "is unreachable (connection refused): keeping the run's records" in output
    assert "is back after" in output
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == epochs
    client = MlflowClient(server.uri)
    _assert_complete(client, _single_run(client, "outage"), epochs)
    assert not (_output_dir(output) / OFFLINE_FOLDER).exists()
    _assert_nothing_running(client)


def test_a_server_that_stays_away_leaves_an_offline_run_that_sync_uploads(server, tmp_path: Path) -> None:
    process = _popen_train(tmp_path, server.uri, "tracking.experiment=offline", "tracking.offline_after_s=2",
                           "trainer.max_epochs_cap=null", "schedule.stages.0.max_epochs=6",
                           "schedule.stages.0.patience=6")
    try:
        lines = _read_until_first_epoch(process)
        reader = _drain(process, lines)
        server.stop()
        assert process.wait(timeout=600) == 0, "".join(lines[-60:])
        reader.join(timeout=60)
    finally:
        process.kill()
    output = "".join(lines)
    folder = _output_dir(output) / OFFLINE_FOLDER
    assert f"upload it with `python -m facebias.sync folder={folder}`" in output
    journal = RunJournal.load(folder)
    assert journal.info["status"] == "FINISHED" and journal.info["run_id"]
    assert journal.params["backbone.name"] == "small_cnn"
    assert journal.tags["facebias.dataset_digest"] and journal.tags["mlflow.runName"]
    assert [m["step"] for m in journal.metrics if m["key"] == "epoch/loss"] == list(range(6))
    assert all(m["timestamp"] > 0 for m in journal.metrics)
    assert {"test/mae", "stage1/epochs"} <= {m["key"] for m in journal.metrics}
    assert {entry["context"] for entry in journal.datasets} == {"train", "valid", "test"}
    assert {path.name for path in (folder / "artifacts").iterdir()} >= ARTIFACTS

    server.start()
    synced = _command(tmp_path, "facebias.sync", f"folder={folder}")
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert f"continued run {journal.info['run_id']}, status FINISHED" in synced.stdout
    client = MlflowClient(server.uri)
    run = _single_run(client, "offline")
    assert run.info.run_id == journal.info["run_id"]
    _assert_complete(client, run, 6)
    _assert_nothing_running(client)

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = sync_offline_run(folder, elsewhere)
    assert result.created and result.status == "FINISHED"
    other = MlflowClient(elsewhere)
    _assert_complete(other, _single_run(other, "offline"), 6)
    _assert_nothing_running(other)


def test_basic_auth_with_the_right_credentials(auth_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.admin_password)
    result = _train(tmp_path, auth_server.uri, "tracking.experiment=with-auth")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(auth_server.uri)
    _assert_complete(client, _single_run(client, "with-auth"))
    experiment_id = client.get_experiment_by_name("with-auth").experiment_id
    assert (f"view it: open {auth_server.uri}/#/experiments/{experiment_id}/runs?workflowType=machine_learning\n"
            in result.stdout)
    _assert_nothing_running(client)


def test_basic_auth_without_a_login_or_with_a_wrong_password_fails_at_start(
    auth_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(TrackingError) as no_login:
        open_client(auth_server.uri, "wrong-credentials")
    assert str(no_login.value) == (f"the MLflow tracking server at {auth_server.uri} requires a login: set "
                                   "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.")
    # The admin's login, checked just before, is in the server's login cache (AUTH_CACHE_S): a wrong password for
    # the same user must still be refused.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.admin_password)
    assert MlflowClient(auth_server.uri).get_experiment_by_name("wrong-credentials") is None
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "not-the-password"}
    result = _train(tmp_path, auth_server.uri, "tracking.experiment=wrong-credentials", env=env,
                    python_options=IMPORTTIME)
    assert result.returncode == 1
    assert last_message(result.stderr) == (
        f"error: the MLflow tracking server at {auth_server.uri} rejected the credentials of user 'admin': check "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
    )
    assert "not-the-password" not in result.stdout + result.stderr
    assert not imported_packages(result.stderr) & TENSORFLOW, "the error needs no TensorFlow"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.admin_password)
    client = MlflowClient(auth_server.uri)
    assert client.get_experiment_by_name("wrong-credentials") is None, "a run was created"
    _assert_nothing_running(client)


@pytest.mark.parametrize(("folder", "reason"), [("", "it has no run.json"), ("nowhere", "it does not exist")])
def test_sync_of_a_folder_that_is_not_an_offline_run_says_so(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            folder: str, reason: str) -> None:
    assert sync_main([str(tmp_path / folder)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / folder} is not an offline run folder: {reason} (give the {OFFLINE_FOLDER} folder of a "
        "run's output directory)."
    )


def test_sync_to_an_unreachable_server_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    RunJournal({"format": "facebias-offline-run/1", "tracking_uri": uri, "experiment_name": "x", "run_id": "r"}
               ).save(tmp_path)
    assert sync_main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: cannot reach the MLflow tracking server at {uri} (connection refused): start it, or upload the run to "
        "another store with tracking_uri=URI."
    )


def test_a_server_outage_between_the_jobs_of_a_sweep_loses_no_job(server, tmp_path: Path) -> None:
    """Two jobs, each in a fresh process; the server goes away as soon as the first child is FINISHED and comes back
    15 s later: the second job waits for it, and the parent and both children end FINISHED."""
    process = subprocess.Popen(
        [sys.executable, "-m", "facebias.train", "-m", "seed=0,1", *SMOKE, f"tracking.uri={server.uri}",
         "tracking.experiment=sweep-outage", "hydra/launcher=local_processes", "hydra.sweeper.max_batch_size=1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )
    lines: list[str] = []
    reader = _drain(process, lines)
    client = MlflowClient(server.uri)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            experiment = client.get_experiment_by_name("sweep-outage")
            finished = [] if experiment is None else client.search_runs(
                [experiment.experiment_id], "tags.`mlflow.parentRunId` != '' and attributes.status = 'FINISHED'")
            if finished:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the sweep ended before the outage:\n" + "".join(lines[-60:])
        server.stop(signal.SIGTERM)
        time.sleep(OUTAGE_S)
        server.start()
        assert process.wait(timeout=600) == 0, "".join(lines[-80:])
        reader.join(timeout=60)
    finally:
        process.kill()
        if not server.healthy():
            server.start()
    job_log = "".join(path.read_text() for path in tmp_path.glob("multirun/*/*/1/train.log"))
    assert "is unreachable (connection refused): waiting up to 300 s for it" in job_log
    assert "is back after" in job_log
    experiment = client.get_experiment_by_name("sweep-outage")
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get("facebias.role") == "sweep"]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId")]
    assert [parent.info.status for parent in parents] == ["FINISHED"]
    assert sorted(child.data.tags["facebias.seed"] for child in children) == ["0", "1"]
    assert {child.info.status for child in children} == {"FINISHED"}
    assert all("test/mae" in child.data.metrics for child in children)
    _assert_nothing_running(client)


@pytest.mark.parametrize("launcher", ["local_processes", "joblib"])
def test_a_sweep_without_a_login_stops_before_launching_any_job(auth_server, tmp_path: Path, launcher: str) -> None:
    """The sweep's parent is opened before any job starts: a server that needs a login ends the command with its one
    sentence and exit status 1, with no job launched and nothing recorded (Hydra would have turned the callback's
    error into a warning and run every job, each failing, and exited 0)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_TRACKING_")}
    result = _command(tmp_path, "facebias.train", "-m", "seed=0,1", *SMOKE, f"tracking.uri={auth_server.uri}",
                      "tracking.experiment=sweep-no-login", f"hydra/launcher={launcher}", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: the MLflow tracking server at {auth_server.uri} requires a login: set MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD."]
    assert not (tmp_path / "multirun").exists(), "no job was launched (no sweep folder, no job records)"
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": auth_server.admin_password}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in admin.items():
            patch.setenv(key, value)
        assert MlflowClient(auth_server.uri).get_experiment_by_name("sweep-no-login") is None, "nothing recorded"
