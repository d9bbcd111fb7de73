"""End to end: `python -m facebias.train` in quick mode into a temporary SQLite MLflow store, as a user runs it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IMPORTTIME, imported_packages, loaded_sklearn, run_facebias, store_runs

from facebias.startup import NATIVE_LOG_LINE

SMALL_DATA = ["data.n_train=240", "data.n_valid=96", "data.n_test=96"]


def _train(cwd: Path, *overrides: str, check: bool = True, python_options: tuple[str, ...] = ()
           ) -> subprocess.CompletedProcess:
    result = run_facebias(cwd, "trainer=smoke", *SMALL_DATA, *overrides, timeout=600, python_options=python_options)
    if check and result.returncode != 0:
        pytest.fail(f"training failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def three_stage_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("e2e")
    return cwd, _train(cwd, "schedule=three_stage", "head=linear", python_options=IMPORTTIME)


@pytest.mark.slow
def test_a_run_imports_keras_without_scikit_learn(three_stage_run) -> None:
    _, result = three_stage_run
    assert {"tensorflow", "keras"} <= imported_packages(result.stderr)
    assert not loaded_sklearn(result.stderr)


@pytest.mark.slow
def test_a_run_writes_no_native_tensorflow_log_line(three_stage_run) -> None:
    _, result = three_stage_run
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert [line for line in lines if NATIVE_LOG_LINE.match(line) or "cuInit" in line or ".cc:" in line] == []


@pytest.mark.slow
def test_run_records_params_tags_and_status(three_stage_run) -> None:
    cwd, result = three_stage_run
    client, runs = store_runs(cwd)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "small_cnn-linear-three_stage-group"
    params = run.data.params
    assert params["backbone.name"] == "small_cnn"
    assert params["schedule.stages.0.trainable"] == "head"
    assert params["schedule.stages.1.trainable"] == "backbone"
    assert float(params["schedule.stages.2.lr"]) == pytest.approx(1e-5)
    assert params["seed"] == "0"
    tags = run.data.tags
    for group, option in [("backbone", "small_cnn"), ("head", "linear"), ("schedule", "three_stage"),
                          ("weighting", "group"), ("data", "synthetic"), ("trainer", "smoke")]:
        assert tags[f"facebias.{group}"] == option
    assert "mlflow.parentRunId" not in tags, "a single run has no parent"
    assert "facebias.experiment" not in tags, "no experiment= was given"
    assert {key: value for key, value in tags.items() if key.startswith("facebias.version.")} == {
        f"facebias.version.{package}": version
        for package, version in [("python", platform.python_version()),
                                 *((name, importlib.metadata.version(name)) for name in ("tensorflow", "keras",
                                                                                         "numpy", "mlflow"))]}
    assert tags["facebias.cpu_threads"] == "1", "TF_NUM_INTRAOP_THREADS=1 in the tests (conftest.py)"
    assert run.info.run_id in result.stdout
    store = f"sqlite:///{(cwd / 'mlruns' / 'mlflow.db').resolve()}"
    assert (f"view it: mlflow ui --backend-store-uri {store} and open http://127.0.0.1:5000/#/experiments/"
            f"{run.info.experiment_id}/runs?workflowType=machine_learning\n") in result.stdout
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert f"model: models:/{model.model_id} (predict with" in result.stdout


@pytest.mark.slow
def test_run_records_per_stage_and_global_curves(three_stage_run) -> None:
    cwd, _ = three_stage_run
    client, runs = store_runs(cwd)
    run_id = runs[0].info.run_id
    stage_epochs = []
    for stage in (1, 2, 3):
        for key in ("loss", "val_loss", "mae", "val_mae"):
            history = client.get_metric_history(run_id, f"stage{stage}/{key}")
            assert [m.step for m in history] == list(range(len(history))) and history
        stage_epochs.append(len(client.get_metric_history(run_id, f"stage{stage}/loss")))
    global_curve = client.get_metric_history(run_id, "epoch/val_mae")
    assert [m.step for m in global_curve] == list(range(sum(stage_epochs)))
    stage2 = [m.value for m in client.get_metric_history(run_id, "stage2/val_mae")]
    assert [m.value for m in global_curve][stage_epochs[0] : stage_epochs[0] + stage_epochs[1]] == stage2


@pytest.mark.slow
def test_run_records_final_metrics_and_artifacts(three_stage_run) -> None:
    cwd, _ = three_stage_run
    client, runs = store_runs(cwd)
    run = runs[0]
    metrics = run.data.metrics
    for split in ("val", "test"):
        for name in ("mae", "age_bias", "gender_bias", "ethnicity_bias", "expression_bias"):
            assert f"{split}/{name}" in metrics and metrics[f"{split}/{name}"] >= 0
        assert metrics[f"{split}/mae"] > 0
        counts = [metrics[f"{split}/count_by_gender/{g}"] for g in ("male", "female")]
        assert sum(counts) == 64
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    expected = {"config.yaml", "group_mae.csv", "predictions_test.csv", "learning_curves.png", "group_mae_test.png"}
    assert expected <= artifacts
    local = Path(client.download_artifacts(run.info.run_id, "predictions_test.csv", str(cwd)))
    header = local.read_text().splitlines()[0].split(",")
    assert {"apparent_age", "predicted_age", "gender", "ethnicity", "expression", "age_group"} <= set(header)
    assert len(local.read_text().splitlines()) == 65


@pytest.mark.slow
def test_a_failure_during_the_run_marks_it_failed_with_the_error(tmp_path: Path) -> None:
    result = _train(tmp_path, "backbone=resnet50", "backbone.weights=/nowhere/vggface2.h5", check=False)
    assert result.returncode == 1
    assert "backbone.weights=null" in result.stderr
    _client, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "/nowhere/vggface2.h5" in runs[0].data.tags["error"]


def test_a_bad_config_value_fails_before_any_run(tmp_path: Path) -> None:
    result = _train(tmp_path, "schedule.stages.0.lr=-1", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: schedule.stages.0.lr=-1.0 is invalid (stage 1): the learning rate must be > 0 (e.g. 1e-4)."
    )
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_ctrl_c_ends_the_run_killed(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "facebias.train", *SMALL_DATA, "trainer.verbose=2", "schedule.stages.0.max_epochs=200",
         "schedule.stages.0.patience=200"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
        # a shell's background job ignores SIGINT and its children inherit that: restore the default, as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in process.stdout:
            if re.match(r"^\d+/\d+ - ", line):  # Keras' line at the end of an epoch (verbose=2)
                break
        else:
            pytest.fail("training ended without logging an epoch")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        process.kill()
    _, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED"]
