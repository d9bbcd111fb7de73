"""+search=fair_pareto end to end: a quick NSGA-II search of 4 trials, every trial a child of the search's parent,
each returning (val/mae, val/mean_bias) to Optuna, and the Pareto front logged to the parent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import QUICK_DATA, run_facebias, store_runs

pytestmark = pytest.mark.slow

BIASES = ("age_bias", "gender_bias", "ethnicity_bias", "expression_bias")
OBJECTIVES = ("val/mae", "val/mean_bias")


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The search, its trials on two of joblib's reused processes (TensorFlow imported twice, not once per
    trial; the search's own `local_processes` launcher, a fresh process per job, runs in
    tests/tracking/test_tracking_server.py)."""
    cwd = tmp_path_factory.mktemp("search")
    result = run_facebias(
        cwd,
        "+search=fair_pareto",
        "trainer=smoke",
        *QUICK_DATA,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.sampler.population_size=2",
        "statistics.bootstrap_resamples=50",
        "statistics.permutations=50",
    )
    (cwd / "search.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        pytest.fail(f"the search failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return cwd


def test_every_trial_is_a_child_returning_both_validation_objectives(search: Path) -> None:
    _client, runs = store_runs(search)
    (parent,) = [run for run in runs if run.data.tags.get("facebias.role") == "sweep"]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(children) == 4 == len(runs) - 1
    for child in children:
        metrics = child.data.metrics
        assert metrics["val/mean_bias"] == pytest.approx(np.mean([metrics[f"val/{b}"] for b in BIASES]), rel=1e-12)
    (results,) = search.glob("multirun/*/*/optimization_results.yaml")
    solutions = yaml.safe_load(results.read_text())["solutions"]
    by_lr = {float(c.data.params["schedule.stages.0.lr"]): c for c in children}
    for solution in solutions:
        child = by_lr[solution["params"]["schedule.stages.0.lr"]]
        assert solution["values"] == pytest.approx([child.data.metrics[name] for name in OBJECTIVES], rel=1e-12)
        assert child.data.params["weighting.name"] == solution["params"]["weighting"]


def test_the_pareto_front_is_logged_to_the_parent_and_matches_a_brute_force_check(search: Path) -> None:
    client, runs = store_runs(search)
    (parent,) = [run for run in runs if run.data.tags.get("facebias.role") == "sweep"]
    logged = {item.path for item in client.list_artifacts(parent.info.run_id, "pareto")}
    assert logged == {"pareto/pareto.md", "pareto/pareto.csv", "pareto/pareto.png"}
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "pareto/pareto.csv", str(search)))
    children = {run.info.run_id: run.data.metrics for run in runs if run.info.run_id != parent.info.run_id}
    assert set(table["run_id"]) == set(children)
    points = {run_id: (m["val/mae"], m["val/mean_bias"]) for run_id, m in children.items()}
    for row in table.itertuples(index=False):
        assert (row[table.columns.get_loc("val/mae")], row[table.columns.get_loc("val/mean_bias")]) == pytest.approx(
            points[row.run_id]
        )
        x, y = points[row.run_id]
        beaten = any(a <= x and b <= y and (a, b) != (x, y) for a, b in points.values())
        assert row.pareto_front == (not beaten)
    (results,) = search.glob("multirun/*/*/optimization_results.yaml")
    optuna_front = sorted(tuple(s["values"]) for s in yaml.safe_load(results.read_text())["solutions"])
    ours = sorted(points[r] for r in table.loc[table["pareto_front"], "run_id"])
    assert len(ours) == len(optuna_front) and np.allclose(ours, optuna_front, rtol=1e-12), "Optuna's front agrees"
    markdown = client.download_artifacts(parent.info.run_id, "pareto/pareto.md", str(search))
    assert f"({int(table['pareto_front'].sum())} of 4 finished)" in Path(markdown).read_text()
