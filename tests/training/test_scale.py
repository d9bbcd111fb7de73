"""Scaling options: mixed precision, XLA switch, MirroredStrategy on logical CPU devices; a light --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICK_DATA, QUICK_GRID_TRAINER, imported_packages, run_facebias
from mlflow.tracking import MlflowClient


def _only_run(cwd: Path):
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("facebias").experiment_id])
    return run


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_is_recorded(tmp_path: Path, precision: str) -> None:
    result = run_facebias(tmp_path, *QUICK_GRID_TRAINER, *QUICK_DATA, f"trainer.precision={precision}",
                          "trainer.jit_compile=false")
    assert result.returncode == 0, result.stderr[-3000:]
    run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.precision"] == precision
    assert run.data.params["trainer.jit_compile"] == "False"
    assert run.data.metrics["test/mae"] > 0


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path: Path) -> None:
    result = run_facebias(tmp_path, *QUICK_GRID_TRAINER, *QUICK_DATA, "schedule=two_stage",
                          "trainer.distribute=mirrored", "trainer.cpu_devices=2", "trainer.run_eagerly=false")
    assert result.returncode == 0, result.stderr[-3000:]
    run = _only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.tags["facebias.replicas"] == "2"
    assert "training is distributed" in run.data.tags["facebias.feature_cache"]
    assert run.data.params["trainer.distribute"] == "mirrored"


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]])
def test_help_and_cfg_do_not_import_tensorflow(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "facebias.train", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = imported_packages(result.stderr)
    assert "hydra" in imported
    assert not imported & {"tensorflow", "keras", "mlflow"}
