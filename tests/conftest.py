"""Shared fixtures: Hydra composition of conf/train.yaml, and an isolated cache and MLflow environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from facebias.config import register_configs

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"

register_configs()


def compose_train(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/train.yaml the way `python -m facebias.train` does."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [])


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's cache and MLflow settings out of every test; share one data cache per session."""
    monkeypatch.setenv("FACEBIAS_CACHE", str(tmp_path_factory.getbasetemp() / "facebias-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
