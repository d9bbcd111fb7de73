"""A run's model in MLflow: an MLflow 3 LoggedModel of the run, with the run's val/ and test/ metrics linked to it;
it loads back with Keras 3 and with mlflow.pyfunc (in a process that never imports facebias), by `models:/<model
id>` and by `runs:/<run id>/model`, predicts what the run predicted, is registered when asked, and `python -m
facebias.predict` writes its ages and scores. The same tiny run records its provenance tags and system metrics; with
`tracking.log_model=false` a run has no model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow.artifacts
import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import IMPORTTIME, QUICK_DATA, REPO_ROOT, compose_train, imported_packages, loaded_sklearn
from mlflow.entities import LoggedModelStatus
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from facebias.config import to_train_config
from facebias.data.dataset import ATTRIBUTE_COLUMNS
from facebias.data.sources import load_dataset
from facebias.errors import TrackingError
from facebias.metrics import bias_scores, mean_absolute_error
from facebias.tracking.models import download_model

pytestmark = pytest.mark.slow
"""A model trained in-process, subprocesses that load TensorFlow, or the quick grid."""

TEST_IMAGES = 64
"""trainer=smoke evaluates the first 64 images of each split."""
REGISTERED = "facebias-age"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One tiny run trained in-process (system metrics every second, model registered) and its test split.

    It evaluates as a graph (`trainer.run_eagerly=false`), as the loaded model predicts: on this barely trained
    model, eager and graph predictions differ by up to 1e-3 relative, which would hide what the test compares."""
    from facebias.run.start import train
    from facebias.tracking.store import tracking_store

    tmp = tmp_path_factory.mktemp("logged-model")
    uri = f"sqlite:///{tmp / 'store.db'}"
    cfg = compose_train(["trainer=smoke", "trainer.run_eagerly=false", *QUICK_DATA, "schedule.stages.0.lr=0.01",
                         f"tracking.uri={uri}",
                         f"tracking.register_as={REGISTERED}", "tracking.system_metrics=true"])
    config = to_train_config(cfg)
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"
    try:
        result = train(config, resolved=OmegaConf.to_container(cfg, resolve=True), output_dir=tmp / "out",
                       store=tracking_store(config.tracking, tmp), choices={"backbone": "small_cnn", "head": "mlp"})
    finally:
        os.environ.pop("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL")
    test = load_dataset(config.data).test
    return tmp, uri, result, test


def _run_predictions(client: MlflowClient, run_id: str, folder: Path) -> pd.DataFrame:
    """The predictions the in-process model made on the test split, as the run logged them."""
    return pd.read_csv(client.download_artifacts(run_id, "predictions_test.csv", str(folder)))


def _model_id(result) -> str:
    assert result.model.startswith("models:/m-"), result.model
    return result.model.removeprefix("models:/")


def test_the_model_is_the_runs_logged_model_with_its_val_and_test_metrics(trained, monkeypatch) -> None:
    tmp, uri, result, _ = trained
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    (found,) = client.search_logged_models([run.info.experiment_id])
    assert (found.model_id, found.name, found.source_run_id) == (_model_id(result), "model", result.run_id)
    assert found.status == LoggedModelStatus.READY
    assert [output.model_id for output in run.outputs.model_outputs] == [found.model_id]
    linked = {metric.key: metric.value for metric in found.metrics}
    expected = {key: value for key, value in run.data.metrics.items() if key.startswith(("val/", "test/"))}
    assert len(expected) > 20 and linked == expected
    assert linked["test/mae"] == pytest.approx(result.metrics["test/mae"], rel=1e-6)
    assert all(metric.run_id == result.run_id and metric.step == 0 for metric in found.metrics)
    assert len(client.get_metric_history(result.run_id, "test/mae")) == 1, "linking adds no row to the run"
    assert found.params["backbone.name"] == run.data.params["backbone.name"] == "small_cnn"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where MLflow 3.17 looks LoggedModels up
    by_run = Path(mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/model", dst_path=str(tmp / "by-run")))
    assert Model.load(str(by_run)).model_id == found.model_id, "runs:/<run id>/model resolves to the LoggedModel"


def test_the_model_loads_with_keras_and_predicts_what_the_run_predicted(trained, monkeypatch) -> None:
    import mlflow.keras

    tmp, uri, result, test = trained
    client = MlflowClient(uri)
    assert not (result.output_dir / "model.weights.h5").exists(), "weights are kept only when asked"
    assert not (result.output_dir / "model").exists(), "the store holds the model"
    expected = _run_predictions(client, result.run_id, tmp)["predicted_age"].to_numpy()
    assert expected.std() > 0.05, "a model whose predictions vary"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    local = mlflow.artifacts.download_artifacts(result.model, dst_path=str(tmp / "download"))
    model = mlflow.keras.load_model(local)
    predicted = model.predict(test.images[:TEST_IMAGES], verbose=0).reshape(-1)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-4)
    called = np.asarray(model(test.images[:TEST_IMAGES])).reshape(-1)  # a direct call: inference mode as well
    np.testing.assert_allclose(called, expected, rtol=1e-5, atol=1e-4)
    logged = Model.load(local)
    assert (logged.model_id, logged.run_id) == (_model_id(result), result.run_id)
    assert set(logged.flavors) == {"keras", "python_function"}
    (images,), (years,) = logged.signature.inputs.inputs, logged.signature.outputs.inputs
    assert (images.type, images.shape) == (np.dtype("uint8"), (-1, *test.images.shape[1:]))
    assert (years.type, years.shape) == (np.dtype("float32"), (-1, 1))
    example = logged.load_input_example(local)
    np.testing.assert_array_equal(example, test.images[:1])


def test_pyfunc_loads_it_in_a_process_without_facebias(trained) -> None:
    tmp, uri, result, test = trained
    np.save(tmp / "images.npy", test.images[:TEST_IMAGES])
    script = ("import sys, numpy as np, mlflow.pyfunc\n"
              "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]))).reshape(-1))\n"
              "assert not any(name.startswith('facebias') for name in sys.modules), 'facebias was imported'\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script, f"models:/{REGISTERED}/1", str(tmp / "images.npy"),
                           str(tmp / "pyfunc.npy")], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _run_predictions(MlflowClient(uri), result.run_id, tmp)["predicted_age"].to_numpy()
    np.testing.assert_allclose(np.load(tmp / "pyfunc.npy"), expected, rtol=1e-5, atol=1e-4)


def test_predict_writes_ages_and_the_scores_the_run_logged(trained) -> None:
    tmp, uri, result, test = trained
    folder = tmp / "predict"
    folder.mkdir()
    np.save(folder / "faces.npy", test.images[:TEST_IMAGES])
    labels = test.attributes.iloc[:TEST_IMAGES][list(ATTRIBUTE_COLUMNS)].reset_index(drop=True)
    labels.insert(0, "apparent_age", test.ages[:TEST_IMAGES])
    labels.to_csv(folder / "faces.csv", index=False)
    done = subprocess.run([sys.executable, *IMPORTTIME, "-m", "facebias.predict", f"model={result.model}",
                           f"images={folder / 'faces.npy'}", f"tracking.uri={uri}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "keras" in imported_packages(done.stderr) and not loaded_sklearn(done.stderr)
    table = pd.read_csv(folder / "faces.predictions.csv")
    logged = _run_predictions(MlflowClient(uri), result.run_id, tmp)
    np.testing.assert_allclose(table["predicted_age"], logged["predicted_age"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(table["abs_error"], logged["abs_error"], rtol=1e-5, atol=1e-4)
    ages, predicted = labels["apparent_age"].to_numpy(), table["predicted_age"].to_numpy()
    scores = {"mae": mean_absolute_error(ages, predicted), **bias_scores(ages, predicted, labels)}
    assert done.stdout.splitlines()[-1] == ", ".join(f"{name} {value:.3f}" for name, value in scores.items())
    assert abs(scores["mae"] - result.metrics["test/mae"]) < 1e-3
    assert abs(scores["gender_bias"] - result.metrics["test/gender_bias"]) < 1e-3


def test_predict_reads_the_registered_version_by_number_and_by_alias(trained, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from facebias.predict import main as predict_main

    _, uri, result, test = trained
    monkeypatch.chdir(tmp_path)
    MlflowClient(uri).set_registered_model_alias(REGISTERED, "champion", "1")
    np.save(tmp_path / "faces.npy", test.images[:TEST_IMAGES])
    logged = _run_predictions(MlflowClient(uri), result.run_id, tmp_path)
    for model in (f"models:/{REGISTERED}/1", f"models:/{REGISTERED}@champion"):
        output = tmp_path / f"{model.rpartition('/')[2]}.csv"
        assert predict_main([f"model={model}", f"images={tmp_path / 'faces.npy'}", f"tracking.uri={uri}",
                             f"output={output}"]) == 0
        table = pd.read_csv(output)
        np.testing.assert_allclose(table["predicted_age"], logged["predicted_age"], rtol=1e-5, atol=1e-4)
    assert not (tmp_path / "mlflow.db").exists(), "nothing read from MLflow's default store"


def test_the_run_is_registered_and_carries_provenance_and_system_metrics(trained) -> None:
    _, uri, result, _ = trained
    client = MlflowClient(uri)
    (version,) = client.search_model_versions(f"name='{REGISTERED}'")
    assert (int(version.version), version.run_id, version.source) == (1, result.run_id, result.model)
    run = client.get_run(result.run_id)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert run.data.tags["mlflow.source.git.commit"] == commit.strip()
    assert run.data.tags["mlflow.user"] == psutil.Process().username()
    assert run.data.tags["mlflow.source.type"] == "LOCAL"
    cpu = client.get_metric_history(result.run_id, "system/cpu_utilization_percentage")
    memory = client.get_metric_history(result.run_id, "system/system_memory_usage_megabytes")
    assert cpu and all(0 <= m.value <= 100 for m in cpu)
    total_mb = psutil.virtual_memory().total / 1e6
    assert memory and all(0 < m.value < total_mb for m in memory)


def test_predict_reads_a_folder_of_images_with_its_attributes(trained, capsys) -> None:
    from PIL import Image

    from facebias.predict import main as predict_main

    tmp, uri, result, test = trained
    folder = tmp / "faces"
    folder.mkdir()
    picked = [5, 0, 17]  # named so that file order differs from split order
    names = [f"face_{letter}.png" for letter in "abc"]
    for name, index in zip(names, picked, strict=True):
        Image.fromarray(test.images[index]).save(folder / name)  # PNG: the same pixels come back
    labels = test.attributes.iloc[picked][list(ATTRIBUTE_COLUMNS)].reset_index(drop=True)
    labels.insert(0, "apparent_age", test.ages[picked])
    labels.insert(0, "file", names)
    labels.iloc[::-1].to_csv(folder / "attributes.csv", index=False)  # rows matched by file, not by order
    model = f"runs:/{result.run_id}/model"  # the run's URI names its LoggedModel too
    assert predict_main([f"model={model}", f"images={folder}", f"tracking.uri={uri}"]) == 0
    table = pd.read_csv(folder / "predictions.csv")
    logged = _run_predictions(MlflowClient(uri), result.run_id, tmp)
    assert list(table["image"]) == names
    np.testing.assert_allclose(table["predicted_age"], logged["predicted_age"].iloc[picked], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(table["apparent_age"], test.ages[picked])
    assert capsys.readouterr().out.startswith(f"wrote the predicted ages to {folder / 'predictions.csv'}\nmae ")


@pytest.mark.parametrize("tracking", ["mlflow", "none"])
def test_without_log_model_a_run_saves_logs_and_names_no_model(tmp_path: Path, tracking: str) -> None:
    """`tracking.log_model=false`: the run finishes with its metrics, but no LoggedModel, no model folder and no model
    location (the summary's `model:` line) — tracked or not (untracked, the folder would otherwise stay)."""
    from facebias.run.start import train
    from facebias.tracking.store import tracking_store

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = compose_train(["trainer=smoke", *QUICK_DATA, f"tracking={tracking}", f"tracking.uri={uri}",
                         "tracking.log_model=false"])
    config = to_train_config(cfg)
    result = train(config, resolved=OmegaConf.to_container(cfg, resolve=True), output_dir=tmp_path / "out",
                   store=tracking_store(config.tracking, tmp_path), choices={})
    assert result.model == ""
    assert result.metrics["test/mae"] > 0
    assert (tmp_path / "out" / "artifacts").is_dir() and not (tmp_path / "out" / "model").exists()
    if tracking == "mlflow":
        client = MlflowClient(uri)
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["test/mae"] == result.metrics["test/mae"]
        assert list(client.search_logged_models([run.info.experiment_id])) == []
        assert run.outputs is None or run.outputs.model_outputs == []
        with pytest.raises(TrackingError) as caught:
            download_model(f"runs:/{result.run_id}/model", uri, tmp_path / "download")
        assert str(caught.value) == (
            f"run {result.run_id} has no model: a run with tracking.log_model=false saves none, nor does one that "
            "ended before its model was logged; give the run of a model (its summary's `model:` line), or a model "
            "folder.")
