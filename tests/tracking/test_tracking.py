"""Where runs are recorded, and how the config becomes MLflow params."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebias.config import TrackingConfig
from facebias.tracking.params import flatten_params
from facebias.tracking.store import default_artifact_location, resolve_tracking_uri


def test_default_store_is_sqlite_under_the_original_cwd(tmp_path: Path) -> None:
    uri = resolve_tracking_uri(TrackingConfig(), tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert (tmp_path / "mlruns").is_dir()
    assert default_artifact_location(TrackingConfig(), tmp_path, uri) == (tmp_path / "mlruns" / "artifacts").as_uri()


def test_configured_uri_and_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = TrackingConfig(uri="http://127.0.0.1:5999")
    assert resolve_tracking_uri(configured, tmp_path) == "http://127.0.0.1:5999"
    assert default_artifact_location(configured, tmp_path, "http://127.0.0.1:5999") is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert resolve_tracking_uri(configured, tmp_path) == "sqlite:////elsewhere/mlflow.db"


def test_stage_values_get_stage_qualified_keys() -> None:
    params = flatten_params({"seed": 3, "schedule": {"name": "two_stage", "stages": [{"lr": 1e-4}, {"lr": 1e-5}]},
                             "head": {"hidden_units": [128, 32]}})
    assert params == {"seed": "3", "schedule.name": "two_stage", "schedule.stages.0.lr": "0.0001",
                      "schedule.stages.1.lr": "1e-05", "head.hidden_units": "[128, 32]"}
