"""A run's model in MLflow's Keras flavour: saving it (signature, input example), registering it, loading it back.

The model is saved as an MLflow model folder (`mlflow.keras.save_model`) among the run's artifacts, under `model/`,
so `runs:/<run id>/model` names it for `mlflow.keras.load_model`, `mlflow.pyfunc.load_model` and
`python -m facebias.predict`. Nothing here touches MLflow's process-wide tracking URI: the store is passed in.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facebias.errors import TrackingError
from facebias.redaction import redacted, redacted_text
from facebias.tracking.store import client_for, with_retries

MODEL_ARTIFACT = "model"
"""The artifact path of a run's model: `runs:/<run id>/model`."""
GROUP_ATTRIBUTES = "facebias_group_attributes"
"""The MLmodel metadata entry listing, for a calibrated model, the attributes its `group` keys join (in order)."""


def model_uri(run_id: str) -> str:
    """The URI of run `run_id`'s model."""
    return f"runs:/{run_id}/{MODEL_ARTIFACT}"


def save_logged_model(model: Any, folder: Path, example: np.ndarray | dict[str, np.ndarray],
                      group_attributes: Sequence[str] | None = None) -> Path:
    """Save the Keras `model` (uint8 images → years) as an MLflow model in `folder` (replaced if present).

    The signature is inferred from `example` (uint8 images, or for a calibrated model {"image": …, "group": group
    keys as a dtype-object array}) and an output of the model's declared dtype and shape (predicting would trace
    the whole network into a graph first: seconds for InceptionResNetV2); the example is stored as the model's
    input example. A calibrated model records `group_attributes` in its metadata (`GROUP_ATTRIBUTES`).
    The requirements are pinned to this Keras (not inferred: that would load the model once more in a subprocess).
    """
    import mlflow.keras
    from mlflow.models import infer_signature

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (output,) = model.outputs
    signature = infer_signature(example, np.zeros((1, *output.shape[1:]), dtype=output.dtype))
    metadata = None if group_attributes is None else {GROUP_ATTRIBUTES: list(group_attributes)}
    mlflow.keras.save_model(model, str(folder), signature=signature, input_example=example, metadata=metadata,
                            pip_requirements=mlflow.keras.get_default_pip_requirements())
    return folder


def register_model(tracking_uri: str, run_id: str, name: str) -> str:
    """Register run `run_id`'s model as a new version of registered model `name` (created if needed); returns
    the version."""
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)
    try:
        with_retries(lambda: client.get_registered_model(name), "look up the registered model")
    except MlflowException:
        with_retries(lambda: client.create_registered_model(name), "register the model")
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    version = with_retries(lambda: client.create_model_version(name, source, run_id=run_id), "register the model")
    return str(version.version)


def download_model(uri: str, tracking_uri: str, folder: Path) -> Path:
    """Download model `uri` (`runs:/…`, `models:/…`, or a local folder) from `tracking_uri` into `folder`."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if Path(uri).is_dir():
        return Path(uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder),
                                                        tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except (MlflowException, OSError) as error:
        raise TrackingError(f"model={uri} could not be read from {redacted(tracking_uri)}: "
                            f"{redacted_text(str(error))}; give runs:/<run id>/model of a finished run, "
                            "models:/<name>/<version>, or a model folder.") from error


def load_keras_model(uri: str, tracking_uri: str, folder: Path) -> tuple[Any, list[str] | None]:
    """The Keras model of `uri` (see `download_model`), loaded with Keras 3 through MLflow's Keras flavour, and the
    attributes its group keys join when it is calibrated (else None)."""
    import mlflow.keras
    from mlflow.models import Model

    local = download_model(uri, tracking_uri, folder)
    if not (local / "MLmodel").is_file():
        raise TrackingError(f"model={uri} is not an MLflow model (no MLmodel file in it); give runs:/<run id>/model.")
    attributes = (Model.load(str(local)).metadata or {}).get(GROUP_ATTRIBUTES)
    return mlflow.keras.load_model(str(local)), None if attributes is None else list(attributes)
