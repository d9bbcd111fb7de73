"""The report reads runs from one store and marks its dead runs KILLED in that same store, whatever
MLFLOW_TRACKING_URI says (two real SQLite stores, the real command in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_report import cli_env, make_store

from facebias.identity import KILLED_REASON_TAG, OUTPUT_DIR_TAG, PARENT_RUN_TAG


def _snapshot(uri: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every experiment of a store with its runs' (id, status): what `untouched` compares."""
    client = MlflowClient(uri)
    return [(experiment.name, sorted((run.info.run_id, run.info.status)
                                     for run in client.search_runs([experiment.experiment_id])))
            for experiment in client.search_experiments()]


@pytest.mark.parametrize("spelling", [("--tracking-uri", "{uri}"), ("tracking_uri={uri}",)],
                         ids=["old-flag", "key-value"])
def test_report_marks_dead_children_in_the_store_it_reads(tmp_path: Path, spelling: tuple[str, ...]) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    store_x, parent_id = make_store(tmp_path / "x")
    store_y = f"sqlite:///{tmp_path / 'y' / 'mlflow.db'}"
    before_y = _snapshot(store_y)
    client_x = MlflowClient(store_x)
    folder = tmp_path / "dead-job"  # its output folder is here and no process holds its lock: its process died
    folder.mkdir()
    dead = client_x.create_run(client_x.get_experiment_by_name("facebias").experiment_id,
                               tags={PARENT_RUN_TAG: parent_id, OUTPUT_DIR_TAG: str(folder)}).info.run_id

    args = [part.format(uri=store_x) for part in spelling]
    result = subprocess.run([sys.executable, "-m", "facebias.report", *args, "log=false", f"out={tmp_path / 'r'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**cli_env(), "MLFLOW_TRACKING_URI": store_y})

    assert result.returncode == 0, result.stderr
    assert f"run(s) {dead} of the sweep died without ending and are marked KILLED." in result.stderr
    marked = client_x.get_run(dead)
    assert marked.info.status == "KILLED"
    assert marked.data.tags[KILLED_REASON_TAG].startswith("its process died without ending the run; found by the "
                                                          "report of its sweep")
    assert _snapshot(store_y) == before_y, "the store MLFLOW_TRACKING_URI names is left untouched"


def test_an_unreachable_server_is_one_sentence_without_its_password(tmp_path: Path) -> None:
    """The report probes a server before asking MLflow (which would retry for minutes) and never prints a
    password of the URI: one sentence, exit 1, no traceback."""
    result = subprocess.run([sys.executable, "-m", "facebias.report", "tracking_uri=http://user:s3cret@127.0.0.1:9",
                             "log=false"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=cli_env())
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output and "s3cret" not in output
    assert "cannot reach the MLflow tracking server at http://user:***@127.0.0.1:9" in output


@pytest.mark.parametrize(("store", "sentence"), [
    ("postgresql://user:s3cret@127.0.0.1:9/db", "error: cannot connect to the database of the MLflow tracking store "
     "postgresql://user:***@127.0.0.1:9/db ("),
    ("sqlite:///{folder}/noise.db", "error: cannot use the MLflow tracking store sqlite:///{folder}/noise.db: "
     "(sqlite3.DatabaseError) file is not a database; check that it is an MLflow store"),
], ids=["database-down", "not-a-store"])
def test_a_store_that_cannot_be_read_is_one_sentence(tmp_path: Path, store: str, sentence: str) -> None:
    """A database that is down is probed before MLflow's minutes of retries; a file that is no MLflow store is named
    as such: one sentence, exit 1, no traceback, no password."""
    (tmp_path / "noise.db").write_bytes(bytes(range(256)) * 64)
    result = subprocess.run([sys.executable, "-m", "facebias.report", f"tracking_uri={store.format(folder=tmp_path)}",
                             "log=false"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=cli_env())
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "s3cret" not in result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(sentence.format(folder=tmp_path)), line


def test_a_report_where_no_runs_were_recorded_creates_no_store(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "facebias.report"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=cli_env())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no MLflow store at sqlite:///{tmp_path}/mlruns/mlflow.db: run the command where the runs were "
        "recorded, or name their store with tracking_uri=sqlite:///….db (or any other store URI)."]
    assert list(tmp_path.iterdir()) == [], "no empty store left behind"


def test_redacted_hides_only_the_password() -> None:
    from facebias.redaction import redacted

    assert redacted("postgresql+psycopg2://leak:S3cret@127.0.0.1:5432/db") == "postgresql+psycopg2://leak:***@127.0.0.1:5432/db"
    assert redacted("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redacted("sqlite:////tmp/a:b@c/mlflow.db") == "sqlite:////tmp/a:b@c/mlflow.db"
