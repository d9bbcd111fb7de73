"""+search=fair_pareto: the search space, where the study is stored, and a quick search end to end — killed while a
trial's run is RUNNING, rerun with the same command, and checked to have trained no (trial, seed) twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from facebias.errors import ConfigError
from facebias.search.space import search_space, trial_overrides
from facebias.search.study import study_storage

BIASES = ("age_bias", "gender_bias", "ethnicity_bias", "expression_bias")
OBJECTIVES = ("val/mae", "val/mean_bias")
TEST_OBJECTIVES = ("test/mae", "test/mean_bias")


def test_the_search_space_samples_the_sweeps_and_passes_the_rest_on() -> None:
    params = {"schedule.stages.0.lr": "tag(log, interval(1e-4, 3e-3))", "head.dropout": "interval(0.0, 0.6)",
              "weighting": "choice(none, group, group_dro)", "sampling": "choice(shuffle, balanced)",
              "head.units": "range(16, 64, 16)"}
    space = search_space(params, ["+search=fair_pareto", "trainer=smoke", "sampling=balanced", "seed=7"], 7)
    assert space.distributions == {
        "schedule.stages.0.lr": FloatDistribution(1e-4, 3e-3, log=True),
        "head.dropout": FloatDistribution(0.0, 0.6),
        "weighting": CategoricalDistribution(["none", "group", "group_dro"]),
        "head.units": CategoricalDistribution(["16", "32", "48"]),
    }, "sampling is fixed by the command line, which wins over params"
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
    assert study_storage(given, "http://team:5000", tmp_path) == given
    with pytest.raises(ConfigError, match=r"^the search records to http://team:5000, whose database facebias does "
                                          r"not know: give the study one with hydra\.sweeper\.storage="):
        study_storage(None, "http://team:5000", tmp_path)
