"""Everything MLflow: the store location, the run lifecycle (FINISHED / FAILED / KILLED), params, curves, artifacts.

The rest of the project talks to a `Recorder`; only this module imports mlflow. With tracking disabled,
`LocalRecorder` keeps the metrics in the run's output folder instead.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from facebias.config import TrackingConfig
from facebias.errors import TrackingError

MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000
METRIC_BATCH = 1000


class Recorder(Protocol):
    """What a run records; implemented by MlflowRecorder and LocalRecorder."""

    run_id: str

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None: ...

    def log_artifacts(self, folder: Path) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def view_hint(self) -> str: ...


def resolve_tracking_uri(config: TrackingConfig, base_dir: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else `tracking.uri`, else SQLite at <base_dir>/<store_dir>/mlflow.db."""
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    if config.uri:
        return config.uri
    store = (base_dir / config.store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def default_artifact_location(config: TrackingConfig, base_dir: Path, tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go under <store_dir>/artifacts; a server decides for itself."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.parent / "artifacts").as_uri()


def flatten_params(resolved: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config to MLflow params; list items of `stages` become stage-qualified keys.

    `{"schedule": {"stages": [{"lr": 1e-4}]}}` → `{"schedule.stage1.lr": "0.0001"}`.
    """
    flat: dict[str, str] = {}
    for key, value in resolved.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, list) and key == "stages":
            for index, stage in enumerate(value, start=1):
                flat.update(flatten_params(stage, f"{prefix}stage{index}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def _retry(action, what: str, attempts: int = 8):
    """Run `action`, retrying with backoff on SQLite's transient 'database is locked'."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:
            if "database is locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise TrackingError(f"could not {what}")


class MlflowRecorder:
    """Records into one MLflow run through an MlflowClient (no global active-run state)."""

    def __init__(self, client, run_id: str, tracking_uri: str, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            batch = items[start : start + 100]
            _retry(lambda b=batch: self.client.log_batch(self.run_id, params=b), "log params")

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), METRIC_BATCH):
            batch = items[start : start + METRIC_BATCH]
            _retry(lambda b=batch: self.client.log_batch(self.run_id, metrics=b), "log metrics")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
        _retry(lambda: self.client.log_batch(self.run_id, tags=items), "set tags")

    def log_artifacts(self, folder: Path) -> None:
        _retry(lambda: self.client.log_artifacts(self.run_id, str(folder)), "log artifacts")

    def terminate(self, status: str) -> None:
        _retry(lambda: self.client.set_terminated(self.run_id, status), "end the run")

    def view_hint(self) -> str:
        if self.tracking_uri.startswith("sqlite:///"):
            return f"mlflow ui --backend-store-uri {self.tracking_uri}"
        return f"open {self.tracking_uri} (experiment id {self.experiment_id}, run {self.run_id})"


class LocalRecorder:
    """Tracking disabled: metrics go to <output_dir>/metrics.jsonl, artifacts stay in the output folder."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.run_id = f"local:{output_dir.name}"
        self.metrics_file = output_dir / "metrics.jsonl"

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        with self.metrics_file.open("a") as stream:
            stream.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        with (self.output_dir / "tags.json").open("a") as stream:
            stream.write(json.dumps(dict(tags)) + "\n")

    def log_artifacts(self, folder: Path) -> None:
        """Nothing to copy: the artifacts already live in the output folder."""

    def view_hint(self) -> str:
        return f"tracking was disabled; results are in {self.output_dir}"


def _experiment_id(client, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = _retry(lambda: client.get_experiment_by_name(name), "look up the experiment")
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"the MLflow experiment {name!r} is deleted: restore it in the MLflow UI or choose another name "
                "with tracking.experiment=…"
            )
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def open_mlflow_run(
    config: TrackingConfig, base_dir: Path, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None
) -> MlflowRecorder:
    """Connect to the store, get or create the experiment, and start a RUNNING run."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking_uri = resolve_tracking_uri(config, base_dir)
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    try:
        experiment_id = _experiment_id(
            client, config.experiment, default_artifact_location(config, base_dir, tracking_uri)
        )
    except TrackingError:
        raise
    except Exception as error:
        raise TrackingError(f"cannot use the MLflow tracking store {tracking_uri}: {error}") from error
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = _retry(
        lambda: client.create_run(experiment_id, run_name=run_name, tags=all_tags), "create the MLflow run"
    )
    return MlflowRecorder(client, run.info.run_id, tracking_uri, experiment_id)


def _error_text(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()


@contextmanager
def tracked_run(
    config: TrackingConfig,
    base_dir: Path,
    output_dir: Path,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str],
    parent_run_id: str | None = None,
) -> Iterator[Recorder]:
    """A run that always ends: FINISHED on success, KILLED on Ctrl-C, FAILED (error logged) on any error."""
    if not config.enabled:
        yield LocalRecorder(output_dir)
        return
    recorder = open_mlflow_run(config, base_dir, run_name, tags, parent_run_id)
    try:
        recorder.log_params(params)
        yield recorder
    except KeyboardInterrupt:
        recorder.set_tags({"error": "interrupted (KeyboardInterrupt)"})
        recorder.terminate("KILLED")
        raise
    except BaseException as error:
        try:
            recorder.set_tags({"error": _error_text(error)})
            (output_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
            recorder.client.log_artifact(recorder.run_id, str(output_dir / "error.txt"))
        finally:
            recorder.terminate("FAILED")
        raise
    else:
        recorder.terminate("FINISHED")
