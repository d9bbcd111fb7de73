"""Liveness: a run's lock tells a dead run from a live one, and decides who may resume it (in-process, no training).

The runs are made directly in a SQLite store; the "live process" is this test process holding the lock.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from conftest import compose_train, store_runs
from mlflow.tracking import MlflowClient

from facebias.config import TrackingConfig, TrainConfig, to_train_config
from facebias.identity import FINGERPRINT_TAG, KILLED_REASON_TAG, OUTPUT_DIR_TAG
from facebias.liveness import Holder, RunLock, RunStillRunningError, lock_run, read_holder, try_lock
from facebias.run.resume import find_resume_target
from facebias.tracking.store import TrackingStore, tracking_store
from facebias.training.checkpoint import Checkpoint, checkpoint_path, save_checkpoint

FINGERPRINT = "f" * 20


def _config(resume: str) -> TrainConfig:
    return to_train_config(compose_train(["trainer=smoke", f"resume={resume}"]))


def _store(base_dir: Path) -> TrackingStore | None:
    """The store of a run started in `base_dir`: <base_dir>/mlruns/mlflow.db."""
    return tracking_store(TrackingConfig(), base_dir)


def _unfinished_run(base_dir: Path, name: str, *, checkpoint: bool) -> tuple[str, Path]:
    """A RUNNING run of the store at <base_dir>/mlruns/mlflow.db, as a killed process leaves it."""
    (base_dir / "mlruns").mkdir(exist_ok=True)
    client = MlflowClient(f"sqlite:///{base_dir / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("facebias")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("facebias")
    folder = base_dir / name
    folder.mkdir()
    if checkpoint:
        save_checkpoint(checkpoint_path(folder), Checkpoint(stage=1, epoch=1, stage_epochs=[], seed=0))
    run = client.create_run(experiment_id, tags={FINGERPRINT_TAG: FINGERPRINT, OUTPUT_DIR_TAG: str(folder)})
    return run.info.run_id, folder


def _status(base_dir: Path, run_id: str) -> tuple[str, str | None]:
    client, _ = store_runs(base_dir)
    run = client.get_run(run_id)
    return run.info.status, run.data.tags.get(KILLED_REASON_TAG)


def test_the_lock_says_who_holds_it_and_is_free_once_released(tmp_path: Path) -> None:
    with lock_run(tmp_path) as lock:
        holder = read_holder(tmp_path)
        assert holder == lock.holder and holder.pid > 0 and holder.host
        assert try_lock(tmp_path) == holder, "a second taker gets the holder, not the lock"
    second = try_lock(tmp_path)
    assert isinstance(second, RunLock)
    second.release()


def test_of_two_concurrent_resumers_exactly_one_gets_the_run(tmp_path: Path) -> None:
    start = threading.Barrier(8)
    results: list[RunLock | Holder] = []

    def resumer() -> None:
        start.wait()
        results.append(try_lock(tmp_path))

    threads = [threading.Thread(target=resumer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    locks = [result for result in results if isinstance(result, RunLock)]
    assert len(locks) == 1
    locks[0].release()


def test_a_run_held_by_a_live_process_is_never_resumed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_id, folder = _unfinished_run(tmp_path, "live", checkpoint=True)
    with lock_run(folder) as lock:
        sentence = f"run {run_id} is still running ({lock.holder.describe()}): it is not resumed"
        with pytest.raises(RunStillRunningError, match="^" + re.escape(sentence)):
            find_resume_target(_config(run_id), FINGERPRINT, _store(tmp_path))
        assert find_resume_target(_config("auto"), FINGERPRINT, _store(tmp_path)) is None
        assert sentence in capsys.readouterr().out
    assert _status(tmp_path, run_id) == ("RUNNING", None), "a live run is left alone"


def test_resume_marks_dead_runs_killed_and_continues_the_one_with_a_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    resumable, _ = _unfinished_run(tmp_path, "older", checkpoint=True)
    died_early, _ = _unfinished_run(tmp_path, "newer", checkpoint=False)
    target = find_resume_target(_config("auto"), FINGERPRINT, _store(tmp_path))
    try:
        assert target is not None and target.run_id == resumable
        assert isinstance(try_lock(target.output_dir), Holder), "the resumer holds the run's lock"
    finally:
        target.lock.release()
    for run_id in (resumable, died_early):
        status, reason = _status(tmp_path, run_id)
        assert status == "KILLED" and reason.startswith("its process died without ending the run"), run_id
    again = find_resume_target(_config("auto"), FINGERPRINT, _store(tmp_path))
    again.lock.release()
    assert again.run_id == resumable
    assert "new run starts" not in capsys.readouterr().out


def test_a_run_that_died_before_its_first_checkpoint_is_killed_and_a_new_run_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_id, _ = _unfinished_run(tmp_path, "early", checkpoint=False)
    assert find_resume_target(_config("auto"), FINGERPRINT, _store(tmp_path)) is None
    assert (f"resume=auto: run(s) {run_id} died before their first checkpoint and are marked KILLED, so a new run "
            "starts.") in capsys.readouterr().out
    assert _status(tmp_path, run_id)[0] == "KILLED"
