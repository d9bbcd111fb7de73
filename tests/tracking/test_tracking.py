"""Where runs are recorded, and how the config becomes MLflow params."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebias.config import TrackingConfig
from facebias.tracking.params import flatten_params
from facebias.tracking.store import TrackingStore, tracking_store


def test_default_store_is_sqlite_under_the_original_cwd(tmp_path: Path) -> None:
    store = tracking_store(TrackingConfig(experiment="e", offline_after_s=7.0), tmp_path)
    assert store == TrackingStore(f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}", "e",
                                  (tmp_path.resolve() / "mlruns" / "artifacts").as_uri(), 7.0)
    assert (tmp_path / "mlruns").is_dir()


def test_uri_precedence_command_line_then_environment_then_config(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    configured = TrackingConfig(uri="http://127.0.0.1:5999")
    assert tracking_store(configured, tmp_path) == TrackingStore("http://127.0.0.1:5999", "facebias", None, 300.0)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    from_env = tracking_store(configured, tmp_path)
    assert (from_env.uri, from_env.artifact_location) == ("sqlite:////elsewhere/mlflow.db",
                                                          "file:///elsewhere/artifacts")
    assert tracking_store(configured, tmp_path, "sqlite:////given/mlflow.db").uri == "sqlite:////given/mlflow.db"


def test_no_store_when_tracking_is_off_unless_one_is_given(tmp_path: Path) -> None:
    off = TrackingConfig(enabled=False)
    assert tracking_store(off, tmp_path) is None
    assert not (tmp_path / "mlruns").exists()
    assert tracking_store(off, tmp_path, "sqlite:////given/mlflow.db").uri == "sqlite:////given/mlflow.db"


def test_stage_values_get_stage_qualified_keys() -> None:
    params = flatten_params({"seed": 3, "schedule": {"name": "two_stage", "stages": [{"lr": 1e-4}, {"lr": 1e-5}]},
                             "head": {"hidden_units": [128, 32]}})
    assert params == {"seed": "3", "schedule.name": "two_stage", "schedule.stages.0.lr": "0.0001",
                      "schedule.stages.1.lr": "1e-05", "head.hidden_units": "[128, 32]"}
