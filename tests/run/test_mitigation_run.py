"""End to end: one quick run with group DRO, balanced sampling and group-offset calibration, checked by value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import QUICK_DATA, run_facebias, store_runs

from facebias.data.groups import group_keys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mitigated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("mitigated")
    result = run_facebias(
        cwd,
        "trainer=smoke",
        *QUICK_DATA,
        "weighting=group_dro",
        "sampling=balanced",
        "calibration=group_offset",
        "weighting.attributes=[gender,age_group]",
    )
    if result.returncode != 0:
        pytest.fail(f"the run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return cwd


def _artifacts(cwd: Path) -> Path:
    (folder,) = cwd.glob("multirun/single/*/*/artifacts")
    return folder


def test_calibration_logs_val_before_and_after_and_test_after_only(mitigated_run: Path) -> None:
    _client, (run,) = store_runs(mitigated_run)
    folder = _artifacts(mitigated_run)
    raw = pd.read_csv(folder / "predictions_val_raw.csv")
    calibrated = pd.read_csv(folder / "predictions_val.csv")
    record = json.loads((folder / "calibration_offsets.json").read_text())
    assert record["attributes"] == ["gender", "ethnicity", "expression"]
    keys = group_keys(raw, record["attributes"])
    residual = raw["predicted_age"] - raw["apparent_age"]
    assert record["offsets"] == pytest.approx(residual.groupby(keys).mean().to_dict(), abs=1e-9)
    np.testing.assert_allclose(
        calibrated["predicted_age"], raw["predicted_age"] - keys.map(record["offsets"]), atol=1e-9
    )
    after = (calibrated["predicted_age"] - calibrated["apparent_age"]).groupby(keys).mean()
    np.testing.assert_allclose(after.to_numpy(), 0.0, atol=1e-9)
    metrics = run.data.metrics
    assert metrics["val_raw/mae"] == pytest.approx(np.abs(residual).mean(), rel=1e-9)
    assert metrics["val/mae"] == pytest.approx(calibrated["abs_error"].mean(), rel=1e-9)
    assert not [key for key in metrics if key.startswith("test_raw")], "test is logged after calibration only"
    test = pd.read_csv(folder / "predictions_test.csv")
    test_keys = group_keys(test, record["attributes"])
    assert metrics["test/mae"] == pytest.approx(test["abs_error"].mean(), rel=1e-9)
    assert test_keys.isin(record["offsets"]).any(), "some test groups were corrected"


def test_dro_curves_follow_the_saved_weights(mitigated_run: Path) -> None:
    client, (run,) = store_runs(mitigated_run)
    groups = json.loads((_artifacts(mitigated_run) / "dro_groups.json").read_text())["groups"]
    assert [g["group"] for g in groups] == sorted(g["group"] for g in groups)
    assert all(g["group"].count("|") == 1 for g in groups), "groups of weighting.attributes=[gender,age_group]"
    q = np.array([g["q"] for g in groups])
    assert q.sum() == pytest.approx(1.0, abs=1e-5)
    last_max = client.get_metric_history(run.info.run_id, "epoch/dro_q_max")[-1]
    last_group = client.get_metric_history(run.info.run_id, "epoch/dro_q_max_group")[-1]
    assert last_max.value == pytest.approx(q.max(), rel=1e-5)
    assert int(last_group.value) == int(np.argmax(q))
    assert q.max() > 1 / len(q), "q moved off uniform"
