"""A run's model in MLflow's Keras flavour: saving it (signature, input example), logging it as an MLflow 3
LoggedModel, registering it, loading it back.

The model is saved as an MLflow model folder (`mlflow.keras.save_model`) and logged as the run's LoggedModel named
`model` (`ModelUpload`), as `mlflow.keras.log_model(name="model")` would log it: it is listed in the experiment's
Models tab and on the run's page, the run's `val/…` and `test/…` metrics are linked to it, and its URI is
`models:/<model id>`. MLflow also resolves `runs:/<run id>/model` to it. Nothing here touches MLflow's
process-wide tracking URI (which `log_model` reads): the store is passed in.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebias.errors import TrackingError
from facebias.redaction import redacted, redacted_text
from facebias.tracking.store import client_for, with_retries

MODEL_NAME = "model"
"""The name of a run's LoggedModel, so that `runs:/<run id>/model` names it too."""
LINKED_METRICS = ("val/", "test/")
"""The prefixes of the run's metrics that are linked to its LoggedModel (shown with it in the Models tab)."""
GROUP_ATTRIBUTES = "facebias_group_attributes"
"""The MLmodel metadata entry listing, for a calibrated model, the attributes its `group` keys join (in order)."""


def model_uri(run_id: str) -> str:
    """`runs:/<run id>/model`: run `run_id`'s model, by the run (MLflow finds its LoggedModel named `model`)."""
    return f"runs:/{run_id}/{MODEL_NAME}"


def logged_model_uri(model_id: str) -> str:
    """`models:/<model id>`: a LoggedModel's own URI."""
    return f"models:/{model_id}"


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


@dataclass
class ModelUpload:
    """Logging the saved model folder `folder` as run `run_id`'s LoggedModel, resumable: `send` may be called again
    after a failure (a tracking server that went away) and goes on from the step it reached, so that one run never
    gets two models. The steps are those of `mlflow.keras.log_model(name="model")`: create the LoggedModel (with
    the run's `params`), name it among the run's outputs, write its id into the MLmodel file, upload the folder,
    link the run's metrics whose key starts with `LINKED_METRICS`, and mark it READY. The metrics are linked as
    they were logged (same value, step and timestamp, so the run's own history gains no row): from `journal`
    (entries with key, value, timestamp, step), else, for a key of `final` logged by an earlier process of a
    resumed run, from the store."""

    folder: Path
    run_id: str
    experiment_id: str
    params: Mapping[str, str] = field(default_factory=dict)
    journal: Sequence[Mapping[str, Any]] = ()
    final: Sequence[str] = ()
    model_id: str | None = None
    location: str = ""
    named: bool = False
    uploaded: bool = False

    def send(self, client) -> str:
        """Do the steps not yet done; returns the model id."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
        from mlflow.models import Model

        if self.model_id is None:
            created = with_retries(lambda: client.create_logged_model(
                self.experiment_id, name=MODEL_NAME, source_run_id=self.run_id, params=dict(self.params)),
                "create the logged model")
            self.model_id, self.location = created.model_id, created.artifact_location
        model_id = self.model_id
        if not self.named:
            with_retries(lambda: client.log_outputs(self.run_id, [LoggedModelOutput(model_id, step=0)]),
                         "name the model among the run's outputs")
            mlmodel = Model.load(str(self.folder))
            mlmodel.model_id = mlmodel.model_uuid = model_id
            mlmodel.run_id, mlmodel.artifact_path = self.run_id, self.location
            mlmodel.save(str(self.folder / "MLmodel"))
            self.named = True
        if not self.uploaded:
            with_retries(lambda: client.log_model_artifacts(model_id, str(self.folder)), "upload the model")
            self.uploaded = True
        linked = [Metric(metric.key, metric.value, metric.timestamp, metric.step, model_id=model_id)
                  for metric in self._linked(client)]
        if linked:  # the run's metric rows exist already: the store adds only the model's
            with_retries(lambda: client.log_batch(self.run_id, metrics=linked), "link the metrics to the model")
        with_retries(lambda: client.finalize_logged_model(model_id, LoggedModelStatus.READY), "finish the model")
        return model_id

    def _linked(self, client) -> list:
        """The latest logged value of each metric to link (MLflow Metric entities)."""
        from mlflow.entities import Metric

        latest = {entry["key"]: Metric(entry["key"], float(entry["value"]), int(entry["timestamp"]),
                                       int(entry["step"]))
                  for entry in self.journal if str(entry["key"]).startswith(LINKED_METRICS)}
        for key in (key for key in self.final if key.startswith(LINKED_METRICS) and key not in latest):
            history = with_retries(lambda key=key: client.get_metric_history(self.run_id, key), "read a metric")
            if history:
                latest[key] = max(history, key=lambda metric: (metric.step, metric.timestamp))
        return list(latest.values())


def run_model_id(client, run_id: str) -> str | None:
    """The id of run `run_id`'s READY LoggedModel named `model` (the latest one), or None."""
    from mlflow.entities import LoggedModelStatus

    run = with_retries(lambda: client.get_run(run_id), "read the MLflow run")
    models = with_retries(lambda: client.search_logged_models(
        [run.info.experiment_id], filter_string=f"name = '{MODEL_NAME}' AND source_run_id = '{run_id}'"),
        "look up the run's model")
    ready = [model for model in models if model.status == LoggedModelStatus.READY]
    return max(ready, key=lambda model: model.creation_timestamp).model_id if ready else None


REGISTERED_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))$")
"""A registered model's version by number (`models:/age/3`) or by alias (`models:/age@champion`)."""


def register_model(tracking_uri: str, run_id: str, model_id: str, name: str) -> str:
    """Register LoggedModel `model_id` of run `run_id` as a new version of registered model `name` (created if
    needed); returns the version."""
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)
    try:
        with_retries(lambda: client.get_registered_model(name), "look up the registered model")
    except MlflowException:
        with_retries(lambda: client.create_registered_model(name), "register the model")
    with process_store(tracking_uri):  # MLflow 3.17's SQL registry looks models:/<model id> up there
        version = with_retries(lambda: client.create_model_version(name, logged_model_uri(model_id), run_id=run_id,
                                                                   model_id=model_id), "register the model")
    return str(version.version)


@contextmanager
def process_store(tracking_uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to `tracking_uri` for the block, then put back as it was (including
    MLFLOW_TRACKING_URI, which setting it exports)."""
    import mlflow

    saved_uri = mlflow.tracking._tracking_service.utils._tracking_uri
    saved_environment = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.tracking._tracking_service.utils._tracking_uri = saved_uri
        if saved_environment is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_environment


def download_model(uri: str, tracking_uri: str, folder: Path) -> Path:
    """Download model `uri` (`models:/<model id>`, `runs:/…`, `models:/<name>/<version>`, or a local folder) from
    `tracking_uri` into `folder`."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if Path(uri).is_dir():
        return Path(uri)
    try:
        location = stored_location(uri, tracking_uri)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(folder),
                                                        tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except (MlflowException, OSError) as error:
        raise TrackingError(f"model={uri} could not be read from {redacted(tracking_uri)}: "
                            f"{redacted_text(str(error))}; give models:/<model id> or runs:/<run id>/model of a "
                            "finished run, models:/<name>/<version>, or a model folder.") from error


def stored_location(uri: str, tracking_uri: str) -> str:
    """Where the store keeps LoggedModel `models:/<model id>`, the LoggedModel of `runs:/<run id>/model`, or that of
    registered version `models:/<name>/<version>` or `models:/<name>@<alias>`; any other URI unchanged. (MLflow 3.17
    resolves them only in its process-wide store, not in `tracking_uri`'s.)"""
    client = client_for(tracking_uri)
    target = uri.removeprefix("models:/")
    if uri.startswith("models:/m-") and "/" not in target:
        return with_retries(lambda: client.get_logged_model(target), "read the logged model").artifact_location
    registered = REGISTERED_VERSION.match(uri)
    if registered is not None:
        name, version, alias = registered.group("name", "version", "alias")
        found = with_retries(lambda: client.get_model_version(name, version) if version is not None
                             else client.get_model_version_by_alias(name, alias), "read the registered model")
        return stored_location(found.source, tracking_uri)
    run_id, _, name = uri.removeprefix("runs:/").partition("/")
    if uri.startswith("runs:/") and name == MODEL_NAME:
        model_id = run_model_id(client, run_id)
        if model_id is not None:
            return stored_location(logged_model_uri(model_id), tracking_uri)
        if not with_retries(lambda: client.list_artifacts(run_id, MODEL_NAME), "list the run's artifacts"):
            raise TrackingError(f"run {run_id} has no model: a run with tracking.log_model=false saves none, nor "
                                "does one that ended before its model was logged; give the run of a model (its "
                                "summary's `model:` line), or a model folder.")
    return uri


def load_keras_model(uri: str, tracking_uri: str, folder: Path) -> tuple[Any, list[str] | None]:
    """The Keras model of `uri` (see `download_model`), loaded with Keras 3 through MLflow's Keras flavour, and the
    attributes its group keys join when it is calibrated (else None)."""
    import mlflow.keras
    from mlflow.models import Model

    local = download_model(uri, tracking_uri, folder)
    if not (local / "MLmodel").is_file():
        raise TrackingError(f"model={uri} is not an MLflow model (no MLmodel file in it); give models:/<model id> "
                             "or runs:/<run id>/model.")
    attributes = (Model.load(str(local)).metadata or {}).get(GROUP_ATTRIBUTES)
    return mlflow.keras.load_model(str(local)), None if attributes is None else list(attributes)
