"""What the store says about where runs came from: MLflow's context tags on the quick grid's parent and children,
Hydra's record of each job and of the sweep, the experiment's kind, the parent's description; and reading a sweep
leaves MLflow's process-wide tracking URI alone, so a later run in the same process records where its config says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mlflow
import psutil
import pytest
import yaml
from conftest import QUICK_DATA, REPO_ROOT, compose_train, store_runs
from omegaconf import OmegaConf

from facebias.config import to_train_config
from facebias.report.__main__ import main as report_main

pytestmark = pytest.mark.slow
"""A model trained in-process, subprocesses that load TensorFlow, or the quick grid."""


def test_parent_and_children_carry_mlflows_context_tags(quick_grid_store: Path) -> None:
    client, runs = store_runs(quick_grid_store)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    assert len(runs) == 9
    for run in runs:
        tags = run.data.tags
        assert tags["mlflow.source.git.commit"] == commit
        assert Path(tags["mlflow.source.name"]) == REPO_ROOT / "facebias" / "train.py"
        assert (tags["mlflow.source.type"], tags["mlflow.user"]) == ("LOCAL", psutil.Process().username())
    experiment = client.get_experiment(runs[0].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_each_job_logs_hydras_overrides_and_config_and_the_parent_the_sweep(quick_grid_store: Path) -> None:
    client, runs = store_runs(quick_grid_store)
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    for child in (run for run in runs if run is not parent):
        folder = Path(client.download_artifacts(child.info.run_id, "hydra", str(quick_grid_store / child.info.run_id)))
        overrides = yaml.safe_load((folder / "overrides.yaml").read_text())
        assert f"experiment={child.data.tags['facebias.experiment']}" in overrides
        composed = yaml.safe_load((folder / "config.yaml").read_text())
        assert composed["backbone"]["name"] == child.data.params["backbone.name"]
        assert str(composed["seed"]) == child.data.params["seed"]
    sweep = yaml.safe_load(Path(client.download_artifacts(parent.info.run_id, "multirun.yaml",
                                                          str(quick_grid_store / "parent"))).read_text())
    assert sweep["hydra"]["sweeper"]["params"]["experiment"] == "glob(exp*)"


def test_the_parents_description_is_its_results_table(quick_grid_store: Path) -> None:
    client, runs = store_runs(quick_grid_store)
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    logged = Path(client.download_artifacts(parent.info.run_id, "report/results.md", str(quick_grid_store / "note")))
    note = parent.data.tags["mlflow.note.content"]
    assert note == logged.read_text(encoding="utf-8")
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in note.splitlines() if line.startswith("| exp"))}
    header = next(line for line in note.splitlines() if line.startswith("| Experiment"))
    mae_column = [c.strip() for c in header.strip("|").split("|")].index("MAE")
    children = [run for run in runs if run is not parent]
    assert sorted(rows) == sorted(run.data.tags["facebias.experiment"] for run in children)
    for run in children:  # one run per experiment: the cell is that run's test MAE and its interval
        cell = rows[run.data.tags["facebias.experiment"]][mae_column].strip("*")
        mae, low, high = (run.data.metrics[f"test/mae{suffix}"] for suffix in ("", "_ci_low", "_ci_high"))
        assert cell == f"{mae:.4f} [{low:.2f}, {high:.2f}]"


def test_a_report_then_a_run_in_one_process_records_where_the_runs_config_says(quick_grid_store: Path,
                                                                                 tmp_path: Path) -> None:
    from facebias.run.start import train
    from facebias.tracking.store import tracking_store

    before = mlflow.get_tracking_uri()
    grid_store = f"sqlite:///{quick_grid_store / 'mlruns' / 'mlflow.db'}"
    _, grid_runs = store_runs(quick_grid_store)
    assert report_main(["--tracking-uri", grid_store, "--no-log", "--out", str(tmp_path / "report")]) == 0
    assert "MLFLOW_TRACKING_URI" not in os.environ and mlflow.get_tracking_uri() == before
    own_store = f"sqlite:///{tmp_path / 'own.db'}"
    cfg = compose_train(["trainer=smoke", *QUICK_DATA, f"tracking.uri={own_store}", "tracking.experiment=own"])
    config = to_train_config(cfg)
    result = train(config, resolved=OmegaConf.to_container(cfg, resolve=True), output_dir=tmp_path / "out",
                   store=tracking_store(config.tracking, tmp_path), choices={})
    own = mlflow.MlflowClient(own_store)
    assert [run.info.run_id for run in own.search_runs([own.get_experiment_by_name("own").experiment_id])] == [
        result.run_id]
    _, after = store_runs(quick_grid_store)
    assert [run.info.run_id for run in after] == [run.info.run_id for run in grid_runs]
