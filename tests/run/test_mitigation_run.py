"""End to end: one quick run with group DRO, balanced sampling and group-offset calibration, checked by value; its
logged model applies the offsets (images and group keys in), loaded with Keras, pyfunc and facebias.predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import QUICK_DATA, compose_train, run_facebias, store_runs
from mlflow.models import Model

from facebias.config import to_train_config
from facebias.data.dataset import ATTRIBUTE_COLUMNS
from facebias.data.groups import group_keys
from facebias.data.sources import load_dataset
from facebias.tracking.models import download_model

pytestmark = pytest.mark.slow

TEST_IMAGES = 64
"""trainer=smoke evaluates the first 64 images of each split."""


@pytest.fixture(scope="module")
def mitigated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("mitigated")
    result = run_facebias(
        cwd,
        "trainer=smoke",
        "trainer.run_eagerly=false",  # predict as the loaded model does (eager differs by up to 1e-3 relative)
        *QUICK_DATA,
        "weighting=group_dro",
        "sampling=balanced",
        "calibration=group_offset",
        "weighting.attributes=[gender,age_group]",
        "calibration.shrinkage=false",  # offsets are raw means (shrinkage: tests/test_calibration.py)
        "calibration.min_count=2",
    )
    if result.returncode != 0:
        pytest.fail(f"the run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return cwd


def _artifacts(cwd: Path) -> Path:
    (folder,) = cwd.glob("multirun/single/*/*/artifacts")
    return folder


def test_calibration_logs_val_before_and_cross_fitted_after_and_test_after_only(mitigated_run: Path) -> None:
    _client, (run,) = store_runs(mitigated_run)
    folder = _artifacts(mitigated_run)
    raw = pd.read_csv(folder / "predictions_val_raw.csv")
    calibrated = pd.read_csv(folder / "predictions_val.csv")
    record = json.loads((folder / "calibration_offsets.json").read_text())
    assert record["attributes"] == ["gender", "ethnicity", "expression"]
    keys = group_keys(raw, record["attributes"])
    residual = raw["predicted_age"] - raw["apparent_age"]
    means, counts = residual.groupby(keys).mean(), residual.groupby(keys).size()
    expected = means.where(counts >= 2, 0.0)
    assert record["offsets"] == pytest.approx(expected.to_dict(), abs=1e-9)
    assert (counts < 2).any() and (counts >= 2).any(), "cells on both sides of calibration.min_count"
    cells = {cell["group"]: cell for cell in record["cells"]}
    assert {key: cell["n"] for key, cell in cells.items()} == counts.to_dict()
    assert {key: cell["raw_mean_residual"] for key, cell in cells.items()} == pytest.approx(means.to_dict())
    fold = np.empty(len(raw), dtype=int)
    fold[np.random.default_rng(0).permutation(len(raw))] = np.arange(len(raw)) % 5  # calibration.seed, folds
    cross = raw["predicted_age"].to_numpy(dtype=float, copy=True)
    for k in range(5):
        rest = pd.Series(residual[fold != k].to_numpy()).groupby(keys[fold != k].to_numpy())
        fitted = rest.mean().where(rest.size() >= 2, 0.0)
        cross[fold == k] -= keys[fold == k].map(fitted).fillna(0.0).to_numpy()
    np.testing.assert_allclose(calibrated["predicted_age"], cross, atol=1e-6)
    metrics = run.data.metrics
    assert metrics["val_raw/mae"] == pytest.approx(np.abs(residual).mean(), rel=1e-9)
    assert metrics["val/mae"] == pytest.approx(calibrated["abs_error"].mean(), rel=1e-9)
    assert not [key for key in metrics if key.startswith("test_raw")], "test is logged after calibration only"
    test = pd.read_csv(folder / "predictions_test.csv")
    test_keys = group_keys(test, record["attributes"])
    assert metrics["test/mae"] == pytest.approx(test["abs_error"].mean(), rel=1e-9)
    assert (test_keys.map(record["offsets"]).fillna(0.0) != 0).any(), "some test groups were corrected"


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


@pytest.fixture(scope="module")
def calibrated_model(mitigated_run: Path):
    """The run's logged model (downloaded), its test predictions after calibration, offsets, and the test split."""
    client, (run,) = store_runs(mitigated_run)
    local = download_model(f"runs:/{run.info.run_id}/model", client.tracking_uri, mitigated_run / "download")
    folder = _artifacts(mitigated_run)
    logged = pd.read_csv(folder / "predictions_test.csv")
    record = json.loads((folder / "calibration_offsets.json").read_text())
    test = load_dataset(to_train_config(compose_train(["trainer=smoke", *QUICK_DATA])).data).test
    return run, local, logged, record, test


def test_the_logged_model_applies_the_offsets_loaded_with_keras_and_pyfunc(calibrated_model) -> None:
    import mlflow.keras
    import mlflow.pyfunc

    _run, local, logged, record, test = calibrated_model
    keys = group_keys(test.attributes.iloc[:TEST_IMAGES], record["attributes"]).to_numpy(dtype=object)
    inputs = {"image": test.images[:TEST_IMAGES], "group": keys}
    expected = logged["predicted_age"].to_numpy()
    assert (pd.Series(keys).map(record["offsets"]).fillna(0.0) != 0).sum() > 10, "many test images get an offset"
    keras_model = mlflow.keras.load_model(str(local))
    np.testing.assert_allclose(keras_model.predict(inputs, verbose=0).reshape(-1), expected, rtol=1e-5, atol=1e-4)
    pyfunc = np.asarray(mlflow.pyfunc.load_model(str(local)).predict(inputs)).reshape(-1)
    np.testing.assert_allclose(pyfunc, expected, rtol=1e-5, atol=1e-4)
    unknown = keras_model.predict(
        {"image": inputs["image"], "group": np.full(TEST_IMAGES, "?|?|?", dtype=object)}, verbose=0
    ).reshape(-1)
    offsets = pd.Series(keys).map(record["offsets"]).fillna(0.0).to_numpy()
    np.testing.assert_allclose(unknown, expected + offsets, rtol=1e-5, atol=1e-4, err_msg="an unknown key: raw age")
    model = Model.load(str(local))
    assert model.metadata == {"facebias_group_attributes": record["attributes"]}
    assert [spec.name for spec in model.signature.inputs.inputs] == ["image", "group"]
    example = model.load_input_example(str(local))
    np.testing.assert_array_equal(example["image"], test.images[:1])
    assert list(example["group"]) == list(keys[:1])


def test_predict_forms_the_group_keys_from_the_attributes_and_scores_like_the_run(
    calibrated_model, tmp_path: Path, capsys
) -> None:
    from facebias.predict import main as predict_main

    run, local, logged, _record, test = calibrated_model
    np.save(tmp_path / "faces.npy", test.images[:TEST_IMAGES])
    assert predict_main([f"model={local}", f"images={tmp_path / 'faces.npy'}"]) == 1
    assert capsys.readouterr().err == (
        f"error: model={local} corrects each group's ages: give attributes=<csv> with "
        "the columns gender, ethnicity, expression for every image.\n"
    )
    labels = test.attributes.iloc[:TEST_IMAGES][list(ATTRIBUTE_COLUMNS)].reset_index(drop=True)
    labels.insert(0, "apparent_age", test.ages[:TEST_IMAGES])
    labels.to_csv(tmp_path / "faces.csv", index=False)
    assert predict_main([f"model={local}", f"images={tmp_path / 'faces.npy'}"]) == 0
    table = pd.read_csv(tmp_path / "faces.predictions.csv")
    np.testing.assert_allclose(table["predicted_age"], logged["predicted_age"], rtol=1e-5, atol=1e-4)
    mae = np.abs(table["predicted_age"] - test.ages[:TEST_IMAGES]).mean()
    assert mae == pytest.approx(run.data.metrics["test/mae"], abs=1e-3)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"mae {mae:.3f}, ")
    labels.drop(columns="apparent_age").to_csv(tmp_path / "faces.csv", index=False)  # new faces: no ages
    assert predict_main([f"model={local}", f"images={tmp_path / 'faces.npy'}"]) == 0
    unlabelled = pd.read_csv(tmp_path / "faces.predictions.csv")
    np.testing.assert_allclose(unlabelled["predicted_age"], table["predicted_age"], rtol=1e-6)
    assert "abs_error" not in unlabelled and "mae" not in capsys.readouterr().out
