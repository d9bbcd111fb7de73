"""Entry point: `python -m facebias.predict model=runs:/<run id>/model images=<folder | .npy>` — apparent ages of new
images from a run's logged model, as a CSV; with an attributes CSV, also the MAE and the four bias scores.

Overrides are Hydra's (`key=value`, conf/predict.yaml); the store is found as training finds it (`tracking.*`,
MLFLOW_TRACKING_URI). TensorFlow and MLflow load only once the arguments are read.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from facebias.cli import Command, run_command
from facebias.config import tracking_config
from facebias.data.dataset import ATTRIBUTE_COLUMNS
from facebias.data.groups import group_keys
from facebias.data.inputs import (
    LABEL_COLUMNS,
    check_attributes_path,
    check_images_path,
    default_attributes,
    read_attributes,
    read_images,
)
from facebias.errors import ConfigError
from facebias.io import write_text
from facebias.metrics import BIAS_ATTRIBUTES, bias_scores, mean_absolute_error
from facebias.shutdown import as_process
from facebias.startup import loading_tensorflow
from facebias.tracking.store import tracking_store

PREDICT = Command(
    prog="python -m facebias.predict",
    config_name="predict",
    summary="Apparent ages of new images from a run's logged model, as a CSV; with an attributes CSV, also the MAE and "
            "the four bias scores.",
    descriptions={
        "model": "models:/m-<model id> (what a run's summary prints), runs:/<run id>/model, models:/<name>/<version>, "
                 "or a model folder",
        "images": "a folder of image files, or a (N, height, width, 3) uint8 .npy array",
        "attributes": "CSV with apparent_age, gender, ethnicity, expression (and file for a folder); null: "
                      "<folder>/attributes.csv or <name>.csv beside <name>.npy when it exists",
        "output": "where the ages go (null: <folder>/predictions.csv or <name>.predictions.csv)",
        "tracking.uri": "MLflow store the model is read from (MLFLOW_TRACKING_URI wins; null: "
                        "./<tracking.store_dir>/mlflow.db)",
    },
)


def default_output(images: Path) -> Path:
    """<folder>/predictions.csv, or <name>.predictions.csv beside <name>.npy."""
    return images / "predictions.csv" if images.is_dir() else images.with_suffix(".predictions.csv")


def predict(cfg: DictConfig) -> tuple[Path, dict[str, float]]:
    """Predict, write the CSV; returns its path and, with attributes, the MAE and bias scores."""
    with loading_tensorflow():
        from facebias.models.calibration import GROUP_INPUT
        from facebias.runtime import predict_years
        from facebias.tracking.models import load_keras_model

    for key in ("model", "images"):
        if not cfg.get(key):
            raise ConfigError(f"{key} is not set: run `python -m facebias.predict model=runs:/<run id>/model "
                              "images=<folder of images | .npy>`.")
    images_path = Path(cfg.images)
    attributes_path = Path(cfg.attributes) if cfg.attributes else default_attributes(images_path)
    check_images_path(images_path)
    if attributes_path is not None:
        check_attributes_path(attributes_path)
    output = Path(cfg.output) if cfg.output else default_output(images_path)
    if output.is_dir():
        raise ConfigError(f"output={output} is a folder: give the CSV file to write, e.g. "
                          f"output={output / 'predictions.csv'}.")
    model_folder = Path(str(cfg.model)).is_dir()
    store = None if model_folder else tracking_store(tracking_config(cfg.tracking), Path.cwd(), read_by="tracking.uri")
    if store is None and not model_folder:
        raise ConfigError(f"model={cfg.model} is read from MLflow: drop tracking=none, or give a model folder.")
    with tempfile.TemporaryDirectory(prefix="facebias-model-") as folder:
        model, group_attributes = load_keras_model(str(cfg.model), store.uri if store else "", Path(folder))
    inputs = model.input if isinstance(model.input, dict) else {"image": model.input}
    images, names = read_images(images_path, tuple(inputs["image"].shape[1:3]))
    calibrated = GROUP_INPUT in inputs
    needed = list(group_attributes or ATTRIBUTE_COLUMNS) if calibrated else list(LABEL_COLUMNS)
    if calibrated and attributes_path is None:
        raise ConfigError(f"model={cfg.model} corrects each group's ages: give attributes=<csv> with the columns "
                          f"{', '.join(needed)} for every image.")
    labels = None if attributes_path is None else read_attributes(attributes_path, names, images_path.is_dir(),
                                                                   needed)
    groups = group_keys(labels, needed).to_numpy(dtype=object) if calibrated else None
    predicted = predict_years(model, images, groups=groups)
    table = pd.DataFrame({"image": names, "predicted_age": predicted.astype(float)})
    scores: dict[str, float] = {}
    if labels is not None and set(LABEL_COLUMNS) <= set(labels.columns):
        ages = labels["apparent_age"].to_numpy(dtype=float)
        table["apparent_age"] = ages
        table["abs_error"] = (table["predicted_age"] - ages).abs()
        scores = {"mae": mean_absolute_error(ages, predicted), **bias_scores(ages, predicted, labels)}
    if labels is not None:
        table = pd.concat([table, labels.drop(columns="apparent_age", errors="ignore")], axis=1)
    write_text(output, table.to_csv(index=False))
    return output, scores


def predict_command(cfg: DictConfig) -> int:
    """Predict, then print where the CSV is and, with attributes, the MAE and bias scores."""
    output, scores = predict(cfg)
    print(f"wrote the predicted ages to {output}")
    if scores:
        print(", ".join(f"{name} {scores[name]:.3f}" for name in ("mae", *BIAS_ATTRIBUTES)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; a bad override exits 2, any other user error 1, each with one sentence."""
    return run_command(PREDICT, argv, predict_command)


cli = as_process(main)
"""The command's process: `main`, then the process ends (facebias.shutdown)."""

if __name__ == "__main__":
    cli()
