"""A sweep's progress: how many jobs Hydra makes of a multirun (composed as `-m` composes it), and what the sweep
folder says is done and running."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from conftest import CONF_DIR
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

from facebias.run.sweep_progress import SweepProgress, sweep_size


@pytest.mark.parametrize(("overrides", "jobs"), [
    (["+sweep=paper_grid_quick"], 8),
    (["+sweep=paper_grid_quick", "seed=0,1"], 16),
    (["seed=0,1,2", "weighting=none,group"], 6),
])
def test_the_sweep_size_is_hydras_product_of_the_sweeps(overrides: list[str], jobs: int) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = GlobalHydra.instance().hydra.compose_config("train", overrides, run_mode=RunMode.MULTIRUN)
        assert sweep_size(config) == jobs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_follows_the_jobs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = tmp_path / "facebias_jobs"
    jobs.mkdir()
    for num in range(3):
        (jobs / f"{num}.started").write_text(f"experiment=exp{num + 1}")
    (jobs / "0.json").write_text("{}")
    progress = SweepProgress(jobs, 8)
    assert progress.state() == (1, "job 2: experiment=exp3")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr("facebias.run.sweep_progress.POLL_S", 0.05)
    progress.start()
    time.sleep(0.3)
    progress.stop()
    assert "sweep:  12%" in terminal.getvalue() and "| 1/8 " in terminal.getvalue()
    assert terminal.getvalue().rstrip().endswith("job 2: experiment=exp3]")


def test_the_callback_still_pickles_with_its_progress_running(tmp_path: Path) -> None:
    """submitit pickles Hydra's callbacks to start each job: the bar's thread must not travel with them."""
    import pickle

    from facebias.run.sweep import SweepTracking

    callback = SweepTracking()
    callback.parent_run_id = "abc"
    callback.progress = SweepProgress(tmp_path, 2)
    copy = pickle.loads(pickle.dumps(callback))
    assert (copy.parent_run_id, copy.progress) == ("abc", None)


def test_a_report_that_breaks_does_not_keep_the_parent_running(tmp_path: Path, monkeypatch) -> None:
    """The results table is an attachment: an unexpected error while building it is logged, and the sweep's parent
    run still ends (FINISHED here) in a real SQLite store."""
    import mlflow

    import facebias.report.build
    from facebias.run.sweep import SweepTracking
    from facebias.tracking.store import TrackingStore

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("facebias", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment).info.run_id

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("predicted_age")

    monkeypatch.setattr(facebias.report.build, "report_for_parent", broken)
    callback = SweepTracking()
    callback.parent_run_id = parent
    (tmp_path / "sweep").mkdir()
    assert callback._finish(TrackingStore(uri, "facebias"), tmp_path / "sweep", True) == []
    assert client.get_run(parent).info.status == "FINISHED"
