"""Entry point: `python -m facebias.predict model=runs:/<run id>/model images=<folder | .npy>` — apparent ages of new
images from a run's logged model, as a CSV; with an attributes CSV, also the MAE and the four bias scores.

Overrides are Hydra's (`key=value`, conf/predict.yaml); the store is found as training finds it (`tracking.*`,
MLFLOW_TRACKING_URI). TensorFlow and MLflow load only once the arguments are read.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from facebias.config import TrackingConfig
from facebias.data.dataset import ATTRIBUTE_COLUMNS
from facebias.data.groups import group_keys
from facebias.data.inputs import LABEL_COLUMNS, default_attributes, read_attributes, read_images
from facebias.errors import ConfigError, FacebiasError
from facebias.io import write_text
from facebias.metrics import BIAS_ATTRIBUTES, bias_scores, mean_absolute_error
from facebias.overrides import explain
from facebias.startup import keras_without_sklearn

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
USAGE_ERROR = 2


def compose_predict(overrides: Sequence[str]) -> DictConfig:
    """conf/predict.yaml with the command line's `key=value` overrides."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="predict"):
        return compose(config_name="predict", overrides=list(overrides))


def default_output(images: Path) -> Path:
    """<folder>/predictions.csv, or <name>.predictions.csv beside <name>.npy."""
    return images / "predictions.csv" if images.is_dir() else images.with_suffix(".predictions.csv")


def predict(cfg: DictConfig) -> tuple[Path, dict[str, float]]:
    """Predict, write the CSV; returns its path and, with attributes, the MAE and bias scores."""
    with keras_without_sklearn():
        from facebias.models.calibration import GROUP_INPUT
        from facebias.runtime import predict_years
        from facebias.tracking.models import load_keras_model
        from facebias.tracking.store import resolve_tracking_uri

    for key in ("model", "images"):
        if not cfg.get(key):
            raise ConfigError(f"{key} is not set: run `python -m facebias.predict model=runs:/<run id>/model "
                              "images=<folder of images | .npy>`.")
    images_path = Path(cfg.images)
    tracking_uri = resolve_tracking_uri(TrackingConfig(**OmegaConf.to_container(cfg.tracking)), Path.cwd())
    with tempfile.TemporaryDirectory(prefix="facebias-model-") as folder:
        model, group_attributes = load_keras_model(str(cfg.model), tracking_uri, Path(folder))
    inputs = model.input if isinstance(model.input, dict) else {"image": model.input}
    images, names = read_images(images_path, tuple(inputs["image"].shape[1:3]))
    attributes_path = Path(cfg.attributes) if cfg.attributes else default_attributes(images_path)
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
    output = Path(cfg.output) if cfg.output else default_output(images_path)
    write_text(output, table.to_csv(index=False))
    return output, scores


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; a bad override exits 2, any other user error 1, each with one sentence."""
    try:
        cfg = compose_predict(sys.argv[1:] if argv is None else argv)
    except HydraException as error:
        print(f"error: {explain(error)}", file=sys.stderr)
        return USAGE_ERROR
    try:
        output, scores = predict(cfg)
    except FacebiasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote the predicted ages to {output}")
    if scores:
        print(", ".join(f"{name} {scores[name]:.3f}" for name in ("mae", *BIAS_ATTRIBUTES)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
