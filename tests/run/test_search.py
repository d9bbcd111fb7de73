"""+search=fair_pareto: the search space, where the study is stored, and a quick search end to end — killed while a
trial's run is RUNNING, rerun with the same command, and checked to have trained no (trial, seed) twice."""

from __future__ import annotations

import math
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import NO_MODEL, QUICK_DATA, QUICK_GRID_TRAINER, store_runs
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution
from team_server import TeamServer

from facebias.errors import ConfigError
from facebias.report.pareto import hypervolume_2d
from facebias.search.space import search_space, trial_overrides
from facebias.search.study import redacted, study_storage
from facebias.search.sweeper import FacebiasSearchSweeper

BIASES = ("age_bias", "gender_bias", "ethnicity_bias", "expression_bias")
OBJECTIVES = ("val/mae", "val/mean_bias")
TEST_OBJECTIVES = ("test/mae", "test/mean_bias")


def test_the_search_space_samples_the_sweeps_and_passes_the_rest_on() -> None:
    params = {"schedule.stages.0.lr": "tag(log, interval(1e-4, 3e-3))", "head.dropout": "interval(0.0, 0.6)",
              "weighting": "choice(none, group, group_dro)", "sampling": "choice(shuffle, balanced)",
              "head.units": "range(16, 64, 16)"}
    arguments = ["+search=fair_pareto", "trainer=smoke", "sampling=balanced", "seed=7",
                 "schedule.stages.1.lr=tag(log, interval(1e-6, 1e-3))"]
    space = search_space(params, arguments, 7)
    assert space.distributions == {
        "schedule.stages.0.lr": FloatDistribution(1e-4, 3e-3, log=True),
        "head.dropout": FloatDistribution(0.0, 0.6),
        "weighting": CategoricalDistribution(["none", "group", "group_dro"]),
        "head.units": CategoricalDistribution(["16", "32", "48"]),
        "schedule.stages.1.lr": FloatDistribution(1e-6, 1e-3, log=True),
    }, "sampling is fixed by the command line, which wins over params; a sweep on it is searched"
    assert space.fixed == ["sampling=balanced", "+search=fair_pareto", "trainer=smoke"], "seed=7 is the base seed"
    jobs = trial_overrides(space, {"head.dropout": 0.1 + 0.2, "weighting": "group"}, trial=5, seeds=3, resume=True)
    fixed = ["sampling=balanced", "+search=fair_pareto", "trainer=smoke", "head.dropout=0.30000000000000004",
             "weighting=group"]
    assert jobs == [[*fixed, f"seed={seed}", "resume=auto", "+hydra.job.env_set.FACEBIAS_SEARCH_TRIAL=5"]
                    for seed in (7, 8, 9)], "seeds seed, seed + 1, …; the float written back exactly"


def test_the_seed_is_never_searched() -> None:
    with pytest.raises(ConfigError, match=r"^the search cannot search `seed`: every trial trains "
                                          r"hydra\.sweeper\.seeds seeds\.$"):
        search_space({}, ["seed=choice(0, 1)"], 0)


def test_the_study_is_stored_beside_a_local_mlflow_store_or_where_it_is_told(tmp_path: Path) -> None:
    mlflow_db = tmp_path / "store" / "mlflow.db"
    assert study_storage(None, f"sqlite:///{mlflow_db}", tmp_path / "x") == f"sqlite:///{tmp_path}/store/optuna.db"
    assert study_storage(None, str(tmp_path / "files"), tmp_path / "x") == f"sqlite:///{tmp_path}/files/optuna.db"
    assert study_storage(None, None, tmp_path / "x") == f"sqlite:///{tmp_path}/x/optuna.db", "tracking disabled"
    given = "postgresql://optuna:secret@db.example/optuna"
    assert study_storage(given, "http://team:5000", tmp_path) == "postgresql+psycopg2://optuna:secret@db.example/optuna"
    for named in ("postgresql+psycopg://o@db/o", "sqlite:////data/optuna.db", "mysql://o@db/o"):
        assert study_storage(named, None, tmp_path) == named, "a named driver, or another database, as given"
    with pytest.raises(ConfigError, match=r"^the search records to http://team:5000, whose database facebias does "
                                          r"not know: give the study one with hydra\.sweeper\.storage="):
        study_storage(None, "http://team:5000", tmp_path)
    with pytest.raises(ConfigError, match=r"^the search records to postgresql://mlflow:\*\*\*@db/mlflow, whose"):
        study_storage(None, "postgresql://mlflow:secret@db/mlflow", tmp_path)
    assert redacted(given) == "postgresql://optuna:***@db.example/optuna" and redacted(mlflow_db.as_uri()) == \
        mlflow_db.as_uri()



@pytest.mark.parametrize(("setting", "sentence"), [
    ({"seeds": 0}, "hydra.sweeper.seeds=0: give a whole number of at least 1."),
    ({"reference_point": [20.0, 6.0, 1.0]}, "hydra.sweeper.reference_point=[20.0, 6.0, 1.0]: give two values "
                                            "(val/mae, val/mean_bias, in years), or null for the worst observed "
                                            "values × 1.1."),
    ({"direction": ["minimize", "maximize"]}, "hydra.sweeper.direction=['minimize', 'maximize']: the search "
                                              "minimises val/mae and val/mean_bias, so it must be [minimize, "
                                              "minimize]."),
])
def test_a_bad_search_setting_stops_with_one_sentence(setting: dict[str, object], sentence: str) -> None:
    settings = {"direction": ["minimize", "minimize"], "study_name": "s", "storage": None, "n_trials": 2,
                "n_jobs": 1, "seeds": 3, "sampler": OmegaConf.create({"seed": 0, "population_size": 2}),
                "reference_point": None, "params": OmegaConf.create({}), **setting}
    with pytest.raises(ConfigError) as refused:
        FacebiasSearchSweeper(**settings).sweep([])
    assert str(refused.value) == sentence

COMMAND = [sys.executable, "-m", "facebias.train", "+search=fair_pareto", "trainer=smoke", *QUICK_DATA,
           "hydra.sweeper.n_trials=2", "hydra.sweeper.seeds=2", "hydra.sweeper.sampler.population_size=2",
           "hydra/launcher=basic", "statistics.bootstrap_resamples=50", "statistics.permutations=50", NO_MODEL]
"""2 trials of 2 seeds, every job in the search's own process (Hydra's basic launcher: TensorFlow imported once)."""
EPOCH_LINE = re.compile(r"^\d+/\d+ - ")
"""Keras' line at the end of an epoch (trainer=smoke prints them: verbose 2); each smoke job has 2 epochs."""
KILL_AT_EPOCH_LINE = 6
"""The 2nd epoch of the 3rd job (trial 1, seed 0): its run is RUNNING with its first epoch's checkpoint."""


def _kill_the_search_during_trial_1(cwd: Path) -> None:
    """Start the search and SIGKILL it (its whole process group, as a killed terminal or node would) at
    KILL_AT_EPOCH_LINE."""
    process = subprocess.Popen(COMMAND, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        seen = 0
        for line in process.stdout:
            seen += bool(EPOCH_LINE.match(line))
            if seen == KILL_AT_EPOCH_LINE:
                break
        else:
            pytest.fail("the search ended before it was to be killed")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
        process.stdout.close()


def _study(cwd: Path) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{cwd / 'mlruns' / 'optuna.db'}")
    return optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{cwd / 'mlruns' / 'optuna.db'}")


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The search killed during trial 1, what the stores held then, and the same command rerun to its end."""
    cwd = tmp_path_factory.mktemp("search")
    _kill_the_search_during_trial_1(cwd)
    _, runs = store_runs(cwd)
    killed = {"trials": [(t.number, t.state.name) for t in _study(cwd).trials],
              "running": [(r.data.tags.get("facebias.trial"), r.data.tags.get("facebias.seed"), r.info.run_id)
                          for r in runs if r.info.status == "RUNNING" and "facebias.trial" in r.data.tags]}
    result = subprocess.run(COMMAND, cwd=cwd, capture_output=True, text=True, timeout=600)
    (cwd / "search.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        pytest.fail(f"the rerun search failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return cwd, killed


@pytest.mark.slow
def test_the_killed_search_goes_on_and_trains_no_trial_seed_twice(search: tuple[Path, dict[str, object]]) -> None:
    cwd, killed = search
    assert killed["trials"] == [(0, "COMPLETE"), (1, "RUNNING")], "killed during trial 1"
    (running,) = killed["running"]
    assert running[:2] == ("1", "0"), "trial 1's first seed was RUNNING when the search was killed"
    assert [(t.number, t.state.name) for t in _study(cwd).trials] == [(0, "COMPLETE"), (1, "COMPLETE")]
    _, runs = store_runs(cwd)
    (parent,) = [run for run in runs if run.data.tags.get("facebias.role") == "sweep"]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1 == 4 and parent.info.status == "FINISHED"
    pairs = sorted((run.data.tags["facebias.trial"], run.data.tags["facebias.seed"]) for run in children)
    assert pairs == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")], "one run per (trial, seed), none trained twice"
    assert all(run.info.status == "FINISHED" for run in children)
    (resumed,) = [run for run in children if run.info.run_id == running[2]]
    assert resumed.data.tags.get("facebias.killed_reason"), "the killed run was resumed, not started again"


@pytest.mark.slow
def test_each_trial_is_the_mean_of_its_seeds_children_with_seeds_0_and_1(search: tuple[Path, object]) -> None:
    cwd, _ = search
    _, runs = store_runs(cwd)
    for trial in _study(cwd).trials:
        seeds = sorted((run for run in runs if run.data.tags.get("facebias.trial") == str(trial.number)),
                       key=lambda run: int(run.data.params["seed"]))
        assert [run.data.params["seed"] for run in seeds] == ["0", "1"]
        assert trial.user_attrs["run_ids"] == [run.info.run_id for run in seeds]
        for run in seeds:
            metrics = run.data.metrics
            assert metrics["val/mean_bias"] == pytest.approx(np.mean([metrics[f"val/{b}"] for b in BIASES]), rel=1e-12)
            assert run.data.params["weighting.name"] == trial.params["weighting"]
            assert float(run.data.params["head.dropout"]) == trial.params["head.dropout"]
        means = [np.mean([run.data.metrics[name] for run in seeds]) for name in OBJECTIVES]
        assert trial.values == pytest.approx(means, rel=1e-12), "told Optuna the means over its seeds"


@pytest.mark.slow
def test_the_front_its_hypervolume_and_its_test_objectives_reach_the_parent(search: tuple[Path, object]) -> None:
    cwd, _ = search
    client, runs = store_runs(cwd)
    (parent,) = [run for run in runs if run.data.tags.get("facebias.role") == "sweep"]
    logged = {item.path for item in client.list_artifacts(parent.info.run_id, "pareto")}
    assert logged == {"pareto/pareto.md", "pareto/pareto.csv", "pareto/pareto.png"}
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "pareto/pareto.csv", str(cwd)))
    trials = {t.number: t for t in _study(cwd).trials}
    points = np.array([trials[number].values for number in table["trial"]])
    assert table[list(OBJECTIVES)].to_numpy() == pytest.approx(points, rel=1e-12)
    for index, (x, y) in enumerate(points):
        beaten = any(a <= x and b <= y and (a, b) != (x, y) for a, b in points)
        assert table.at[index, "pareto_front"] == (not beaten)
        trial = trials[table.at[index, "trial"]]
        seeds = [run for run in runs if run.info.run_id in trial.user_attrs["run_ids"]]
        tested = [table.at[index, name] for name in TEST_OBJECTIVES]
        if beaten:
            assert all(math.isnan(value) for value in tested), "test objectives of the front only"
        else:
            expected = [np.mean([run.data.metrics[name] for run in seeds]) for name in TEST_OBJECTIVES]
            assert tested == pytest.approx(expected, rel=1e-12), "the means over the trial's seeds"
    reference = points.max(axis=0) * 1.1
    metrics = client.get_run(parent.info.run_id).data.metrics
    assert metrics["pareto/hypervolume"] == pytest.approx(hypervolume_2d(points, reference), rel=1e-12)
    assert [metrics["pareto/reference/val/mae"], metrics["pareto/reference/val/mean_bias"]] == pytest.approx(
        reference.tolist(), rel=1e-12)
    markdown = Path(client.download_artifacts(parent.info.run_id, "pareto/pareto.md", str(cwd))).read_text()
    assert f"Hypervolume of the front: {metrics['pareto/hypervolume']:.6g} (reference point val/mae " \
           f"{reference[0]:.6g}, val/mean_bias {reference[1]:.6g}: the worst observed values × 1.1" in markdown


@pytest.mark.slow
def test_a_search_recording_to_the_team_server_keeps_its_study_in_its_postgresql(
        team_server: TeamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The study in a PostgreSQL database of the team server's cluster, the password given as libpq's PGPASSWORD (off
    the command line): the trial's values are its seeds' means read back from the server, and the same command rerun
    trains nothing and adds no trial."""
    password = secrets.token_hex(8)
    with team_server.database_with_login(password) as database:
        storage = f"postgresql://{database}@127.0.0.1:5432/{database}"
        command = [sys.executable, "-m", "facebias.train", "+search=fair_pareto", *QUICK_DATA, *QUICK_GRID_TRAINER,
                   NO_MODEL, "hydra.sweeper.n_trials=1", "hydra.sweeper.seeds=2",
                   "hydra.sweeper.sampler.population_size=2", "hydra/launcher=basic",
                   "statistics.bootstrap_resamples=50", "statistics.permutations=50",
                   f"hydra.sweeper.storage={storage}"]
        env = {**os.environ, **team_server.env(), "PGPASSWORD": password}
        runs = [subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
                for _ in range(2)]
        for result in runs:
            assert result.returncode == 0, result.stderr[-4000:]
            assert password not in result.stdout + result.stderr
        studies = optuna.get_all_study_summaries(f"postgresql+psycopg2://{database}:{password}@127.0.0.1:5432/{database}")
        (trial,) = optuna.load_study(study_name=studies[0].study_name,
                                     storage=f"postgresql+psycopg2://{database}:{password}@127.0.0.1:5432/{database}").trials
    assert len(studies) == 1 and trial.state.name == "COMPLETE"
    assert not list(tmp_path.rglob("optuna.db")), "no local study beside a tracking server"
    for name, value in team_server.env().items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(team_server.uri)
    seeds = [client.get_run(run_id) for run_id in trial.user_attrs["run_ids"]]
    assert [run.data.params["seed"] for run in seeds] == ["0", "1"] and trial.user_attrs["seeds"] == [0, 1]
    means = [np.mean([run.data.metrics[name] for run in seeds]) for name in OBJECTIVES]
    assert trial.values == pytest.approx(means, rel=1e-12)
    (parent_id,) = {run.data.tags["mlflow.parentRunId"] for run in seeds}
    children = client.search_runs([seeds[0].info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 2, "the rerun trained no seed again"
    assert client.get_run(parent_id).info.status == "FINISHED"
