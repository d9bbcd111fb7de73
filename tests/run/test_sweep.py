"""Sweeps: the quick 8-experiment grid as one MLflow parent with 8 children, parallel jobs on one SQLite store,
a failing job that does not stop the others, and resuming a sweep that trains only what is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import (
    CONF_DIR,
    IMPORTTIME,
    NO_MODEL,
    QUICK_DATA,
    QUICK_GRID_TRAINER,
    TENSORFLOW,
    compose_train,
    imported_packages,
    kill_at,
    last_message,
    run_facebias,
)
from mlflow.tracking import MlflowClient

TEST_METRICS = ("test/mae", "test/age_bias", "test/gender_bias", "test/ethnicity_bias", "test/expression_bias")
EXPERIMENTS = sorted(path.stem for path in (CONF_DIR / "experiment").glob("exp*.yaml"))


def _client(cwd: Path) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    return client, client.get_experiment_by_name("facebias").experiment_id


def _parents(cwd: Path) -> list:
    client, experiment_id = _client(cwd)
    return client.search_runs([experiment_id], "tags.`facebias.role` = 'sweep'", order_by=["attributes.start_time"])


def _children(cwd: Path, parent_run_id: str) -> list:
    client, experiment_id = _client(cwd)
    return client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def _outcomes(cwd: Path) -> dict[int, str]:
    """Job number → outcome (finished / skipped / failed) of the latest sweep folder."""
    sweep_dirs = sorted((cwd / "multirun").glob("*/*/facebias_jobs"))
    return {int(p.stem): json.loads(p.read_text())["status"] for p in sweep_dirs[-1].glob("*.json")}


@pytest.mark.slow
def test_grid_is_one_parent_with_eight_children(quick_grid_store: Path) -> None:
    parents = _parents(quick_grid_store)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "paper_grid_quick"
    assert parent.info.status == "FINISHED"
    assert "+sweep=paper_grid_quick" in parent.data.tags["facebias.sweep_command"]
    children = _children(quick_grid_store, parent.info.run_id)
    assert sorted(c.data.tags["facebias.experiment"] for c in children) == EXPERIMENTS
    assert sorted(int(c.data.tags["facebias.job_num"]) for c in children) == list(range(8))
    for child in children:
        assert child.info.status == "FINISHED"
        assert all(metric in child.data.metrics for metric in TEST_METRICS)
    by_experiment = {c.data.tags["facebias.experiment"]: c for c in children}
    exp7 = by_experiment["exp7_resnet50_mlp_three_stage"]
    assert (exp7.data.params["backbone.name"], exp7.data.params["head.name"]) == ("resnet50", "mlp")
    assert [exp7.data.params[f"schedule.stages.{k}.trainable"] for k in (0, 1, 2)] == ["head", "backbone", "all"]
    assert by_experiment["exp2_irv2_linear_one_stage"].data.params["backbone.name"] == "inception_resnet_v2"
    assert {child.data.params["trainer.truncate_backbone"] for child in children} == {"True"}, "quick mode says so"


@pytest.mark.slow
def test_quick_grid_recomputes_the_backbone_where_a_feature_pass_would_not_pay(quick_grid_store: Path) -> None:
    # The grid's head stage: 1 epoch of 1 batch of 8 training images plus the 32 validation images it keeps,
    # against one pass over the 240 training and 32 validation images (tests/training/test_feature_cache.py shows
    # that a stage for which the pass pays computes the features once and later runs read them back).
    trainer = compose_train([*QUICK_GRID_TRAINER, *QUICK_DATA]).trainer
    reads = trainer.max_epochs_cap * (trainer.max_train_batches * trainer.max_batch_size + trainer.max_eval_samples)
    feature_pass = 240 + trainer.max_eval_samples
    assert (reads, feature_pass) == (40, 272)
    (parent,) = _parents(quick_grid_store)
    by_experiment = {c.data.tags["facebias.experiment"]: c for c in _children(quick_grid_store, parent.info.run_id)}
    for name in ("exp5_resnet50_mlp_two_stage", "exp6_irv2_mlp_two_stage", "exp7_resnet50_mlp_three_stage",
                 "exp8_irv2_mlp_three_stage"):
        run = by_experiment[name]
        assert (run.data.metrics["feature_cache/misses"], run.data.metrics["feature_cache/hits"]) == (0, 0)
        notes = run.data.tags["facebias.feature_cache"].split(" | ")
        assert notes[0] == (f"stage 1: backbone recomputed every epoch because it reads at most {reads} images "
                            f"through the backbone, not more than one feature pass ({feature_pass} images)")
        assert notes[1].startswith("stage 2: backbone recomputed every epoch because the stage trains backbone")
    assert by_experiment["exp1_resnet50_linear_one_stage"].data.metrics["feature_cache/misses"] == 0


@pytest.mark.slow
def test_grid_parent_holds_the_results_table(quick_grid_store: Path) -> None:
    client, _ = _client(quick_grid_store)
    parent = _parents(quick_grid_store)[0]
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/results.md", "report/results.csv", "report/results.html", "report/results.png"} <= files
    table = Path(client.download_artifacts(parent.info.run_id, "report/results.md", str(quick_grid_store)))
    text = table.read_text()
    for experiment in EXPERIMENTS:
        assert experiment in text


def test_experiments_differ_only_in_group_choices() -> None:
    for name in EXPERIMENTS:
        text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_")
        keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "#", "-"))]
        assert keys == ["defaults", "description"], f"{name} sets more than group choices: {keys}"


@pytest.mark.slow
def test_four_parallel_jobs_on_one_store_a_failing_one_stops_none_and_a_rerun_trains_only_the_missing_and_failed(
        tmp_path: Path) -> None:
    command = ["-m", "trainer=smoke", *QUICK_DATA, "trainer.max_train_batches=1", "trainer.max_eval_samples=32",
               "schedule.stages.0.lr=1e-3,-1,2e-3,3e-3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", NO_MODEL]
    result = run_facebias(tmp_path, *command)
    assert result.returncode == 1
    assert "error: 1 job(s) of the sweep failed (the others ran): job 1" in result.stderr
    assert "schedule.stages.0.lr=-1.0 is invalid (stage 1)" in result.stderr
    (parent,) = _parents(tmp_path)
    assert parent.info.status == "FAILED"
    assert "job 1 (" in parent.data.tags["facebias.failed_jobs"]
    children = _children(tmp_path, parent.info.run_id)
    statuses = {c.data.tags["facebias.job_num"]: c.info.status for c in children}
    assert statuses == {"0": "FINISHED", "1": "FAILED", "2": "FINISHED", "3": "FINISHED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "learning rate must be > 0" in failed.data.tags["error"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    metric_sets = [set(c.data.metrics) for c in finished]
    assert all(metrics == metric_sets[0] and set(TEST_METRICS) <= metrics for metrics in metric_sets)
    client, _ = _client(tmp_path)
    for child in finished:
        assert len(client.get_metric_history(child.info.run_id, "epoch/loss")) == 2
    assert list(client.search_logged_models([parent.info.experiment_id])) == [], "tracking.log_model=false: no model"

    # The same command again, after job 2's run was deleted and job 3's marked failed: jobs 1 (failed), 2 (missing)
    # and 3 (failed) run again under the same parent, job 0 (finished) is skipped.
    first = {c.data.tags["facebias.job_num"]: c.info.run_id for c in children}
    client.delete_run(first["2"])
    client.set_terminated(first["3"], "FAILED")
    rerun = run_facebias(tmp_path, *command)
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    parents = _parents(tmp_path)
    assert [p.info.run_id for p in parents] == [parent.info.run_id], "the rerun must reuse the sweep's parent"
    assert parents[0].info.status == "FAILED", "job 1 failed again"
    assert _outcomes(tmp_path) == {0: "skipped", 1: "failed", 2: "finished", 3: "finished"}
    after = _children(tmp_path, parent.info.run_id)
    finished_after = {c.data.tags["facebias.job_num"]: c.info.run_id for c in after if c.info.status == "FINISHED"}
    assert finished_after["0"] == first["0"], "job 0 had finished: it must not train again"
    assert finished_after["2"] != first["2"] and finished_after["3"] != first["3"]
    assert sorted(c.data.tags["facebias.job_num"] for c in after) == ["0", "1", "1", "2", "3", "3"]


@pytest.mark.parametrize(
    ("option", "launcher"),
    [("local_processes", "submitit_launcher.LocalLauncher"), ("slurm_gpu", "facebias_launchers.SlurmLauncher"),
     ("slurm", "facebias_launchers.SlurmLauncher"), ("joblib", "joblib_launcher.JoblibLauncher")],
)
def test_launcher_configs_compose(option: str, launcher: str) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hydra/launcher={option}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(launcher)


def test_a_sweep_job_returns_the_validation_mae_never_a_test_metric(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from facebias.config import to_train_config
    from facebias.run.recipe import RunResult
    from facebias.run.sweep import run_sweep_job

    hydra_config = SimpleNamespace(sweep=SimpleNamespace(dir=str(tmp_path)), job=SimpleNamespace(num=0, env_set={}),
                                   overrides=SimpleNamespace(task=["seed=1"]))
    config = compose_train(["tracking=none"])
    result = RunResult("r", {"val/mae": 7.5, "test/mae": 6.25}, tmp_path, "")
    returned = run_sweep_job(to_train_config(config), {"seed": 1}, hydra_config, lambda *a, **k: result, "n", {},
                             None)
    assert returned == 7.5
    result.metrics["val/mean_bias"] = 2.5
    hydra_config.sweeper = SimpleNamespace(direction=["minimize", "minimize"])
    returned = run_sweep_job(to_train_config(config), {"seed": 1}, hydra_config, lambda *a, **k: result, "n", {},
                             None)
    assert returned == (7.5, 2.5), "a two-objective search gets (val/mae, val/mean_bias)"


def _sweep_killed_at(cwd: Path, marker: str, count: int) -> None:
    """Start a two-job quick sweep (one process) and SIGKILL it at its `count`-th line containing `marker`."""
    kill_at([sys.executable, "-m", "facebias.train", *TWO_JOBS], cwd, lambda line: marker in line, count)


TWO_JOBS = ["-m", "seed=0,1", "trainer=smoke", *QUICK_DATA, "sweep_name=killed"]


@pytest.mark.slow
def test_a_killed_sweep_is_completed_by_its_own_command(tmp_path: Path) -> None:
    # Killed in its second job (that child run is left RUNNING by a dead process); its rerun, killed in turn while
    # writing the sweep's report (both children FINISHED); the next rerun trains nothing and writes the report.
    _sweep_killed_at(tmp_path, "writing the run's artifacts", 2)
    client, experiment_id = _client(tmp_path)
    before = {run.info.run_id: run.info.status for run in client.search_runs([experiment_id])}
    assert "RUNNING" in before.values(), "a SIGKILLed sweep cannot end its runs"
    _sweep_killed_at(tmp_path, "writing the results table of the sweep", 1)
    (parent,) = _parents(tmp_path)
    assert parent.info.status == "RUNNING", "killed during its report"
    killed = [c for c in _children(tmp_path, parent.info.run_id) if c.info.status == "KILLED"]
    assert [c.data.tags["facebias.seed"] for c in killed] == ["1"]
    assert "found by the rerun of its sweep" in killed[0].data.tags["facebias.killed_reason"]
    result = run_facebias(tmp_path, *TWO_JOBS, python_options=IMPORTTIME)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _outcomes(tmp_path) == {0: "skipped", 1: "skipped"}, "the last rerun trains nothing"
    assert not imported_packages(result.stderr) & TENSORFLOW, "skipped jobs need no TensorFlow"
    (parent,) = _parents(tmp_path)
    assert parent.info.status == "FINISHED"
    children = _children(tmp_path, parent.info.run_id)
    statuses = sorted((child.data.tags["facebias.seed"], child.info.status) for child in children)
    assert statuses == [("0", "FINISHED"), ("1", "FINISHED"), ("1", "KILLED")], "a finished job is never retrained"
    assert any(a.path == "report/results.md" for a in client.list_artifacts(parent.info.run_id, "report"))


def test_a_sweep_job_with_an_invalid_config_fails_without_loading_tensorflow(tmp_path: Path) -> None:
    result = run_facebias(tmp_path, "-m", "trainer=smoke", *QUICK_DATA, "schedule.stages.0.lr=-1",
                          python_options=IMPORTTIME)
    assert result.returncode == 1
    assert (f"error: all 1 job(s) of the sweep failed: job 0 (trainer=smoke {' '.join(QUICK_DATA)} "
            "schedule.stages.0.lr=-1): schedule.stages.0.lr=-1.0 is invalid (stage 1)"
            ) in result.stderr
    (parent,) = _parents(tmp_path)
    (child,) = _children(tmp_path, parent.info.run_id)
    assert (parent.info.status, child.info.status) == ("FAILED", "FAILED")
    assert not imported_packages(result.stderr) & TENSORFLOW


def test_a_sweep_whose_every_job_failed_exits_1_also_without_tracking(tmp_path: Path) -> None:
    """With tracking=none there is no parent run to end FAILED: the jobs' outcome files still make the command fail."""
    result = run_facebias(tmp_path, "-m", "tracking=none", "schedule.stages.0.lr=-1,-2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: all 2 job(s) of the sweep failed: job 0 (tracking=none schedule.stages.0.lr=-1): "
        "schedule.stages.0.lr=-1.0 is invalid (stage 1)")
    assert _outcomes(tmp_path) == {0: "failed", 1: "failed"}
    assert not (tmp_path / "mlruns").exists()


def test_jobs_that_failed_alike_are_summed_up_in_one_sentence(tmp_path: Path) -> None:
    result = run_facebias(tmp_path, "-m", "tracking=none", "seed=0,1", "schedule.stages.0.lr=-1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: all 2 job(s) of the sweep failed: each with schedule.stages.0.lr=-1.0 is invalid (stage 1): the "
        "learning rate must be > 0 (e.g. 1e-4).")


def test_a_sweep_whose_folder_cannot_be_written_fails_its_parent_and_launches_nothing(tmp_path: Path) -> None:
    # A full disk did this in a chaos soak: the parent file could not be written, Hydra turned the error into a
    # warning and launched the jobs, which found no parent and trained as runs of their own.
    (tmp_path / "blocked").write_text("a file where the sweep's folder should be")
    result = run_facebias(tmp_path, "-m", "trainer=smoke", *QUICK_DATA, "seed=0,1", "hydra.sweep.dir=blocked/sweep",
                          python_options=IMPORTTIME)
    assert result.returncode == 1
    message = "cannot write the sweep's folder blocked/sweep: Not a directory"
    assert last_message(result.stderr) == f"error: {message}"
    assert "Traceback" not in result.stderr
    assert not imported_packages(result.stderr) & TENSORFLOW, "no job was launched"
    client, experiment_id = _client(tmp_path)
    (parent,) = client.search_runs([experiment_id])
    assert (parent.data.tags["facebias.role"], parent.info.status, parent.data.tags["error"]) == (
        "sweep", "FAILED", message)
