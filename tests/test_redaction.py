"""Redaction (facebias.redaction) on hand-written cases: what becomes `***`, what stays as it is; configs, log records,
Hydra's files, the warning, and the store an offline run is uploaded to."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_train

from facebias.redaction import (
    carries_secret,
    redacted,
    redacted_config,
    redacted_text,
    redacting_process_output,
    secret_keys,
)
from facebias.run.hydra_files import credential_keys, without_secrets
from facebias.tracking.sync import store_uri

CASES = [
    ("postgresql+psycopg2://leaktest:S3cretPW@127.0.0.1:5432/leaktest",
     "postgresql+psycopg2://leaktest:***@127.0.0.1:5432/leaktest"),
    ("http://alice:pw@mlflow.example.org:5000/", "http://alice:***@mlflow.example.org:5000/"),
    ("https://h.example/w.h5?token=abc123&n=1", "https://h.example/w.h5?token=***&n=1"),
    ("https://h.example/a?x=1&password=hunter2#top", "https://h.example/a?x=1&password=***#top"),
    ("https://acct.blob.example/c?sv=2024&sig=AbC%2Fd&se=2026", "https://acct.blob.example/c?sv=2024&sig=***&se=2026"),
    ("s3://b/k?X-Amz-Signature=f00&X-Amz-Date=1", "s3://b/k?X-Amz-Signature=***&X-Amz-Date=1"),
    ("mysql://:only@db/x", "mysql://:***@db/x"),
    ("https://u:p@ss@h/x", "https://u:***@h/x"),  # an unescaped @ in the password: urllib splits at the last one
    # Hydra escapes a sweep job's overrides so:
    (r"tracking.uri=postgresql\://leak\:S3cret@127.0.0.1\:5432/db", r"tracking.uri=postgresql\://leak\:***@127.0.0.1\:5432/db"),
    (r"x=https\://h/x?token\=abc\,d&n\=1", r"x=https\://h/x?token\=***&n\=1"),
]
UNCHANGED = [
    "postgresql://alice@db.internal/mlflow",  # a user name alone is no secret
    "http://127.0.0.1:5000",
    "sqlite:////tmp/a:b@c/mlflow.db",  # no user part: the colon and @ are in the path
    "https://h.example/x?monkey=1&n=2",
    "file:///data/appa-real",
    "a plain sentence: with a colon, an @ and key = value",
    "",
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_credentials_become_stars(text: str, expected: str) -> None:
    assert redacted(text) == expected
    assert redacted(expected) == expected and carries_secret(text) and not carries_secret(expected)


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redacted_text(text) == text and not carries_secret(text)


def test_every_uri_in_free_text_is_redacted() -> None:
    command = ("python -m facebias.train -m 'tracking.uri=postgresql://a:pw1@db/x' seed=0,1 "
               "pretrained.resnet50=https://u:pw2@h/w.h5,https://h/w.h5?api_key=pw3")
    assert redacted_text(command) == ("python -m facebias.train -m 'tracking.uri=postgresql://a:***@db/x' seed=0,1 "
                                      "pretrained.resnet50=https://u:***@h/w.h5,https://h/w.h5?api_key=***")


def test_a_nested_config_is_redacted_into_a_new_object() -> None:
    config = {"tracking": {"uri": "http://u:pw@h", "offline_after_s": 300, "enabled": True},
              "data": {"root": None, "password": "pw", "token_file": ""},
              "schedule": {"stages": [{"lr": 1e-3, "source": "https://h/x?token=t"}]}}
    assert redacted_config(config) == {
        "tracking": {"uri": "http://u:***@h", "offline_after_s": 300, "enabled": True},
        "data": {"root": None, "password": "***", "token_file": ""},
        "schedule": {"stages": [{"lr": 1e-3, "source": "https://h/x?token=***"}]}}
    assert config["tracking"]["uri"] == "http://u:pw@h"
    assert sorted(secret_keys(config)) == ["data.password", "schedule.stages.0.source", "tracking.uri"]


def test_the_composed_config_names_the_keys_with_credentials() -> None:
    config = compose_train(["tracking.uri=postgresql://a:pw@db/x", "pretrained.resnet50='https://h/w.h5?token=t'"])
    assert credential_keys(config) == ["pretrained.resnet50", "tracking.uri"]
    assert credential_keys(compose_train(["tracking.uri=postgresql://a@db/x"])) == []


def test_log_records_are_redacted_whatever_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    redacting_process_output()
    redacting_process_output()  # once is enough: installing again changes nothing
    with caplog.at_level(logging.INFO):
        logging.getLogger("facebias.test").info("store %s ready", "postgresql://a:pw@db/x")
        try:
            raise ValueError("cannot open https://h/x?token=t0k")
        except ValueError:
            logging.getLogger("facebias.test").exception("failed")
    assert caplog.records[0].getMessage() == "store postgresql://a:***@db/x ready"
    assert "token=***" in caplog.text and "t0k" not in caplog.text


def test_an_uncaught_error_prints_its_traceback_redacted() -> None:
    program = ("from facebias.redaction import redacting_process_output\nredacting_process_output()\n"
               "raise RuntimeError('cannot open postgresql://a:pw9@db/x')")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "pw9" not in result.stderr
    assert result.stderr.splitlines()[0] == "Traceback (most recent call last):"
    assert result.stderr.splitlines()[-1] == "RuntimeError: cannot open postgresql://a:***@db/x"


def test_hydra_files_are_rewritten_without_credentials(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("- seed=1\n- tracking.uri=postgresql://a:pw@db/x\n")
    clean = tmp_path / "config.yaml"
    clean.write_text("seed: 1\n")
    clean.chmod(0o644)
    for file in (overrides, clean):
        without_secrets(file)
    assert overrides.read_text() == "- seed=1\n- tracking.uri=postgresql://a:***@db/x\n"
    assert clean.read_text() == "seed: 1\n" and clean.stat().st_mode & 0o777 == 0o644, "untouched"


def test_an_offline_run_is_uploaded_to_its_store_without_the_redacted_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = "postgresql://alice:***@db/mlflow"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store_uri(recorded) == "postgresql://alice@db/mlflow"  # libpq reads ~/.pgpass or PGPASSWORD
    assert store_uri(recorded, "sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://alice:pw@db/mlflow")
    assert store_uri(recorded) == "postgresql://alice:pw@db/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://bob:pw@db/mlflow")
    assert store_uri(recorded) == "postgresql://alice@db/mlflow"
    assert store_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
