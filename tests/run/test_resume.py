"""Resuming a killed run: SIGKILL `python -m facebias.train` in stage 2 of three, during its final evaluation, or
before its first checkpoint, then rerun it with `resume=auto`.

A run with a checkpoint must be continued as the same MLflow run, end FINISHED, log no step twice, and reach the
same val/test metrics as an uninterrupted run with the same seed; one without is marked KILLED and a new run starts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import IMPORTTIME, TENSORFLOW, imported_packages, kill_at, last_message, store_runs

from facebias.training.checkpoint import (
    Checkpoint,
    EarlyStoppingState,
    capture_rng,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)

COMMAND = [sys.executable, "-m", "facebias.train", "trainer=smoke", "data.n_train=240", "data.n_valid=96",
           "data.n_test=96", "schedule=three_stage", "trainer.max_epochs_cap=4", "trainer.deterministic=true",
           "trainer.verbose=2"]
EPOCH_LINE = re.compile(r"^\d+/\d+ - ")
"""Keras' line at the end of an epoch (verbose=2)."""
STAGE1_EPOCHS = 4
"""Stage 1 runs all its max_epochs_cap epochs: its patience (5) exceeds them."""
SHORT = ["schedule=one_stage", "trainer.max_epochs_cap=2"]
"""A short run, for tests of which run `resume=auto` continues (2 epochs: Keras prints no "Epoch 1/1" line)."""
REL_TOLERANCE = 1e-4
EVALUATION_LINE = "evaluating the validation and test splits"
"""What a run prints when its last stage is over and its final evaluation begins."""
ARTIFACTS_LINE = "writing the run's artifacts"
"""What a run prints when its final metrics are logged and its artifacts are about to be written."""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*COMMAND, *overrides], cwd=cwd, capture_output=True, text=True, env=_env(),
                            timeout=900)
    if result.returncode != 0:
        pytest.fail(f"training failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _kill_at(cwd: Path, marker: Callable[[str], bool], count: int = 1, *overrides: str) -> None:
    """Start the run and SIGKILL it as soon as it has printed its `count`-th line that `marker` accepts."""
    kill_at([*COMMAND, *overrides], cwd, marker, count)


def _kill_in_stage_two(cwd: Path) -> None:
    """Start the run and SIGKILL it right after the first epoch of stage 2 has ended."""
    _kill_at(cwd, lambda line: bool(EPOCH_LINE.match(line)), STAGE1_EPOCHS + 1)


def _assert_no_step_twice(client, run) -> None:
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} logged twice at a step: {steps}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The test metrics of an uninterrupted run."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    _train(cwd)
    _, runs = store_runs(cwd)
    return runs[0].data.metrics


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("killed")
    _kill_in_stage_two(cwd)
    _, runs = store_runs(cwd)
    assert [r.info.status for r in runs] == ["RUNNING"], "a SIGKILLed run cannot end itself"
    assert (Path(runs[0].data.tags["facebias.output_dir"]) / "checkpoint" / "last.npz").is_file()
    return cwd, runs[0].info.run_id, _train(cwd, "resume=auto")


@pytest.mark.slow
def test_the_killed_run_is_continued_and_finishes(resumed) -> None:
    cwd, run_id, result = resumed
    client, runs = store_runs(cwd)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "FINISHED")]
    assert f"resuming run {run_id}" in result.stdout
    output_dir = Path(runs[0].data.tags["facebias.output_dir"])
    assert not (output_dir / "checkpoint").exists(), "checkpoints are removed when the run finishes"
    assert not (output_dir / "model.weights.h5").exists(), "the weights file is kept only when asked"
    (model,) = client.search_logged_models([runs[0].info.experiment_id])
    assert model.source_run_id == run_id, "one LoggedModel, of the continued run"
    assert sorted(a.path for a in client.list_logged_model_artifacts(model.model_id)) == [
        "MLmodel", "conda.yaml", "data", "input_example.json", "python_env.yaml", "requirements.txt",
        "serving_input_example.json"]


@pytest.mark.slow
def test_every_epoch_is_logged_exactly_once(resumed) -> None:
    cwd, run_id, _ = resumed
    client, _ = store_runs(cwd)
    total = 0
    for stage in (1, 2, 3):
        for key in ("loss", "val_loss", "mae", "val_mae"):
            steps = [m.step for m in client.get_metric_history(run_id, f"stage{stage}/{key}")]
            assert sorted(steps) == list(range(len(steps))) and steps, f"stage{stage}/{key}: {steps}"
        total += len(client.get_metric_history(run_id, f"stage{stage}/loss"))
    for key in ("loss", "val_loss", "mae", "val_mae"):
        steps = [m.step for m in client.get_metric_history(run_id, f"epoch/{key}")]
        assert sorted(steps) == list(range(total)), f"epoch/{key}: {steps}"
    _, runs = store_runs(cwd)
    history = (Path(runs[0].data.tags["facebias.output_dir"]) / "artifacts" / "history.csv").read_text()
    assert len(history.splitlines()) == total + 1, "the run's history.csv has every epoch, from before the kill too"
    _assert_no_step_twice(client, runs[0])


@pytest.mark.slow
def test_the_resumed_run_ends_where_an_uninterrupted_one_does(resumed, reference) -> None:
    cwd, _, _ = resumed
    _, runs = store_runs(cwd)
    metrics = runs[0].data.metrics
    finals = sorted(key for key in reference if key.startswith(("test/", "val/")))
    assert finals
    for key in finals:
        assert metrics[key] == pytest.approx(reference[key], rel=REL_TOLERANCE, abs=1e-6), key
    for stage in (1, 2, 3):
        assert metrics[f"stage{stage}/epochs"] == reference[f"stage{stage}/epochs"]


@pytest.mark.slow
def test_a_run_killed_during_its_evaluation_then_its_artifacts_resumes_to_the_same_metrics(
    tmp_path: Path, reference
) -> None:
    # One run killed twice: during its final evaluation (no final metric logged yet), then, resumed, while it
    # writes its artifacts (final metrics logged); the second resume finishes it.
    _kill_at(tmp_path, lambda line: line.startswith(EVALUATION_LINE))
    _, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["RUNNING"]
    assert not any(key.startswith(("val/", "test/")) for key in runs[0].data.metrics), "killed before them"
    _kill_at(tmp_path, lambda line: line.startswith(ARTIFACTS_LINE), 1, "resume=auto")
    _, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["RUNNING"]
    assert any(key.startswith(("val/", "test/")) for key in runs[0].data.metrics), "killed after them"
    result = _train(tmp_path, "resume=auto")
    assert f"resuming run {runs[0].info.run_id}" in result.stdout
    client, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED"]
    _assert_no_step_twice(client, runs[0])
    metrics = runs[0].data.metrics
    finals = {key: value for key, value in reference.items() if key.startswith(("val/", "test/", "stage"))}
    assert {key: metrics[key] for key in finals} == finals, "the same predictions, so bit for bit the same metrics"
    lookups = ("feature_cache/hits", "feature_cache/misses")  # the shared data cache decides which of the two
    assert sum(metrics[key] for key in lookups) == sum(reference[key] for key in lookups) > 0


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_is_marked_killed(tmp_path: Path) -> None:
    _kill_at(tmp_path, lambda line: line.startswith("Epoch 1/"), 1, *SHORT)
    _, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["RUNNING"], "a SIGKILLed run cannot end itself"
    dead = runs[0].info.run_id
    assert not (Path(runs[0].data.tags["facebias.output_dir"]) / "checkpoint").exists()
    result = _train(tmp_path, *SHORT, "resume=auto")
    assert (f"resume=auto: run(s) {dead} died before their first checkpoint and are marked KILLED, so a new run "
            "starts.") in result.stdout
    _, runs = store_runs(tmp_path)
    assert [(r.info.run_id == dead, r.info.status) for r in runs] == [(True, "KILLED"), (False, "FINISHED")]
    assert runs[0].data.tags["facebias.killed_reason"].startswith("its process (host ")


@pytest.mark.slow
def test_resume_of_an_unknown_run_is_one_sentence(tmp_path: Path) -> None:
    command = [COMMAND[0], *IMPORTTIME, *COMMAND[1:], "resume=0123456789abcdef0123456789abcdef"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 1
    assert last_message(result.stderr).startswith(
        "error: resume=0123456789abcdef0123456789abcdef: the MLflow experiment 'facebias' has no such run")
    assert not imported_packages(result.stderr) & TENSORFLOW, "the error needs no TensorFlow"


@pytest.mark.slow
def test_resume_auto_without_a_killed_run_starts_a_new_one(tmp_path: Path) -> None:
    result = _train(tmp_path, *SHORT, "resume=auto")
    assert "resume=auto: no unfinished run of this config has a checkpoint, so a new run starts." in result.stdout
    _, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED"]


def test_a_checkpoint_round_trips_and_replaces_the_last_one_atomically(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path)
    python_rng, numpy_rng = capture_rng()
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(3, np.float32)]
    stopping = EarlyStoppingState(best=0.5, best_epoch=1, wait=1, best_weights=[w + 1 for w in weights])
    save_checkpoint(path, Checkpoint(stage=1, epoch=1, stage_epochs=[], seed=3))
    save_checkpoint(path, Checkpoint(stage=2, epoch=3, stage_epochs=[4], seed=3, model_variables=weights,
                                     optimizer_variables=[np.int64(7)], early_stopping=stopping,
                                     python_rng=python_rng, numpy_rng=numpy_rng,
                                     last_metrics={"records": [[{"epoch/loss": 1.5}, 6]]}))
    assert [p.name for p in path.parent.iterdir()] == ["last.npz"], "no temporary file is left behind"
    loaded = load_checkpoint(path)
    assert (loaded.stage, loaded.epoch, loaded.stage_epochs, loaded.global_epoch) == (2, 3, [4], 7)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.model_variables, weights, strict=True))
    assert [int(v) for v in loaded.optimizer_variables] == [7]
    assert (loaded.early_stopping.best, loaded.early_stopping.wait) == (0.5, 1)
    assert np.array_equal(loaded.early_stopping.best_weights[0], weights[0] + 1)
    assert loaded.last_metrics == {"records": [[{"epoch/loss": 1.5}, 6]]}
    assert load_checkpoint(tmp_path / "nowhere.npz") is None


def test_run_schedule_resumed_from_any_epoch_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """In-process: resume from a mid-stage checkpoint and from the one at the end of stage 1."""
    from facebias.config import BackboneConfig, HeadConfig, StageConfig, TrainerConfig
    from facebias.models.assemble import build_model
    from facebias.training.loop import LoopContext, run_schedule
    from facebias.training.schedule import plan_stages

    def model():
        import keras

        keras.utils.set_random_seed(0)
        backbone = BackboneConfig(name="small_cnn", input_size=32, preprocessing="unit", widths=[4, 8])
        return build_model(backbone, HeadConfig(name="mlp", dropout=0.5, hidden_units=[8]), (32, 32), 32)

    rng = np.random.default_rng(0)
    images, targets = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8), rng.uniform(0.1, 0.9, 48)
    stages = plan_stages([StageConfig(trainable="head", lr=1e-2, max_epochs=3, patience=5, batch_size=16),
                          StageConfig(trainable="all", lr=1e-3, max_epochs=3, patience=5, batch_size=16)],
                         TrainerConfig())
    path = checkpoint_path(tmp_path)

    def run(resume: Checkpoint | None) -> tuple[list[np.ndarray], list]:
        records: list = []

        def sink(metrics: dict, step: int) -> None:
            if any(key.startswith("stage") for key in metrics):  # one copy per epoch, taken after its checkpoint
                (tmp_path / f"epoch{len(records)}.npz").write_bytes(path.read_bytes())
            records.append((metrics, step))

        trained = model()
        run_schedule(trained, stages, (images, targets, None), (images[:16], targets[:16]),
                     LoopContext(sink, verbose=0, checkpoint_file=path, resume=resume))
        return trained.get_weights(), records

    weights, records = run(None)
    # the end of stage 1 (its last epoch's curves are sent after the stage-end checkpoint), one epoch into stage 2
    checkpoints = [load_checkpoint(tmp_path / f"epoch{2 * (done - 1)}.npz") for done in (3, 4)]
    assert [(c.stage, c.epoch, c.stage_epochs) for c in checkpoints] == [(2, 0, [3]), (2, 1, [3])]
    assert checkpoints[0].last_metrics["records"] == [[m, s] for m, s in records[4:6]], "resent if a kill lost them"
    for epochs_done, checkpoint in zip((3, 4), checkpoints, strict=True):
        resumed_weights, resumed_records = run(checkpoint)
        assert resumed_records == records[2 * epochs_done:], "each later epoch is logged once, none again"
        assert all(np.array_equal(a, b) for a, b in zip(resumed_weights, weights, strict=True))
