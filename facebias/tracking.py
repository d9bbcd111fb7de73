"""Everything MLflow: the store location, the run lifecycle (FINISHED / FAILED / KILLED), params, curves, artifacts.

The rest of the project talks to a `Recorder`; only this module imports mlflow. With tracking disabled,
`LocalRecorder` keeps the metrics in the run's output folder instead.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
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

    def log_dataset(self, name: str, digest: str, source: str, sizes: Mapping[str, int]) -> None: ...

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


TRANSIENT_STORE_ERRORS: tuple[str, ...] = ("database is locked", "already exists")
"""SQLite errors of several processes using one store at once: a lock, or two processes creating its tables."""


def _retry(action, what: str, attempts: int = 10):
    """Run `action`, retrying with backoff on the transient errors of a shared SQLite store."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:
            if not any(marker in str(error) for marker in TRANSIENT_STORE_ERRORS) or attempt == attempts - 1:
                raise
            time.sleep(min(0.1 * 2**attempt, 5.0))
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

    def log_dataset(self, name: str, digest: str, source: str, sizes: Mapping[str, int]) -> None:
        """Record the dataset as an MLflow run input, once per split (context = split name)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(name=f"{name}-{split}", digest=digest, source_type="local", source=source,
                        profile=json.dumps({"num_rows": count})),
                tags=[InputTag("mlflow.data.context", split)],
            )
            for split, count in sizes.items()
        ]
        _retry(lambda: self.client.log_inputs(self.run_id, datasets=inputs), "log the dataset")

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

    def log_dataset(self, name: str, digest: str, source: str, sizes: Mapping[str, int]) -> None:
        """Nothing to record beyond the dataset card in the output folder."""

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
        experiment = _retry(lambda: client.get_experiment_by_name(name), "look up the experiment")
        if experiment is None:
            raise
        return experiment.experiment_id


def connect(config: TrackingConfig, base_dir: Path):
    """An MlflowClient on the configured store and the id of the configured experiment (created if needed)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking_uri = resolve_tracking_uri(config, base_dir)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        client = _retry(lambda: MlflowClient(tracking_uri), "open the tracking store")
        experiment_id = _experiment_id(
            client, config.experiment, default_artifact_location(config, base_dir, tracking_uri)
        )
    except TrackingError:
        raise
    except Exception as error:
        raise TrackingError(f"cannot use the MLflow tracking store {tracking_uri}: {error}") from error
    return client, tracking_uri, experiment_id


def open_mlflow_run(
    config: TrackingConfig, base_dir: Path, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None
) -> MlflowRecorder:
    """Connect to the store, get or create the experiment, and start a RUNNING run."""
    client, tracking_uri, experiment_id = connect(config, base_dir)
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
    on_open: Callable[[str], None] | None = None,
) -> Iterator[Recorder]:
    """A run that always ends: FINISHED on success, KILLED on Ctrl-C, FAILED (error logged) on any error.

    `on_open(run_id)` is called as soon as the run exists.
    """
    if not config.enabled:
        yield LocalRecorder(output_dir)
        return
    recorder = open_mlflow_run(config, base_dir, run_name, tags, parent_run_id)
    if on_open is not None:
        on_open(recorder.run_id)
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


SWEEP_ROLE_TAG = "facebias.role"
SWEEP_KEY_TAG = "facebias.sweep_key"


def store_uri(tracking_uri: str | None, base_dir: Path, store_dir: str = "mlruns") -> str:
    """The tracking URI a command-line tool should read: the given one, MLFLOW_TRACKING_URI, or the default store."""
    return tracking_uri or resolve_tracking_uri(TrackingConfig(store_dir=store_dir), base_dir)


def load_sweep_runs(tracking_uri: str, experiment: str, parent_run_id: str | None = None):
    """The parent run of a sweep (the given one, else the most recent) and its children as a DataFrame.

    Returns `(parent_run, children)`; `children` has mlflow.search_runs' columns (run_id, status, tags.*,
    params.*, metrics.*). Raises TrackingError with a clear sentence when there is nothing to read.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = _retry(lambda: MlflowClient(tracking_uri), "open the tracking store")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise TrackingError(f"no MLflow experiment named {experiment!r} in {tracking_uri}: run a sweep first, or "
                            "name the experiment with --experiment.")
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException as error:
            raise TrackingError(f"no run {parent_run_id!r} in {tracking_uri}.") from error
    else:
        parents = client.search_runs(
            [found.experiment_id], f"tags.`{SWEEP_ROLE_TAG}` = 'sweep'", order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not parents:
            raise TrackingError(f"no sweep found in experiment {experiment!r} of {tracking_uri}: run one with "
                                "`python -m facebias.train -m 'experiment=glob(exp*)'`, or pass --parent RUN_ID.")
        parent = parents[0]
    mlflow.set_tracking_uri(tracking_uri)
    children = mlflow.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    return parent, children


def log_folder(tracking_uri: str, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
    """Log every file of `folder` as artifacts of run `run_id`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    _retry(lambda: client.log_artifacts(run_id, str(folder), artifact_path), "log artifacts")


def open_sweep_parent(config: TrackingConfig, base_dir: Path, name: str, key: str, tags: Mapping[str, str]) -> str:
    """The parent run of a sweep: the latest one with the same sweep key (resumed, RUNNING again), else a new one."""
    client, _, experiment_id = connect(config, base_dir)
    found = _retry(
        lambda: client.search_runs(
            [experiment_id], f"tags.`{SWEEP_KEY_TAG}` = '{key}'", order_by=["attributes.start_time DESC"],
            max_results=1,
        ),
        "look up the sweep",
    )
    all_tags = {**tags, SWEEP_ROLE_TAG: "sweep", SWEEP_KEY_TAG: key}
    if found:
        run_id = found[0].info.run_id
        _retry(lambda: client.update_run(run_id, status="RUNNING"), "reopen the sweep run")
        _retry(lambda: client.delete_tag(run_id, "facebias.failed_jobs"), "reset the sweep run") if (
            "facebias.failed_jobs" in found[0].data.tags
        ) else None
        MlflowRecorder(client, run_id, "", experiment_id).set_tags({**all_tags, "facebias.resumed": "true"})
        return run_id
    run = _retry(lambda: client.create_run(experiment_id, run_name=name, tags=all_tags), "create the sweep run")
    return run.info.run_id


def finished_child(config: TrackingConfig, base_dir: Path, parent_run_id: str, fingerprint: str):
    """The FINISHED child run of `parent_run_id` with this config fingerprint, or None."""
    client, _, experiment_id = connect(config, base_dir)
    runs = _retry(
        lambda: client.search_runs(
            [experiment_id],
            f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`facebias.config_fingerprint` = "
            f"'{fingerprint}' and attributes.status = 'FINISHED'",
            max_results=1,
        ),
        "look up finished jobs",
    )
    return runs[0] if runs else None


def record_failed_run(
    config: TrackingConfig, base_dir: Path, run_name: str, tags: Mapping[str, str], parent_run_id: str, error: str
) -> str:
    """A FAILED child run for a job that failed before its own run existed (e.g. a bad value for that job)."""
    recorder = open_mlflow_run(config, base_dir, run_name, {**tags, "error": error[:MAX_TAG_LENGTH]}, parent_run_id)
    recorder.terminate("FAILED")
    return recorder.run_id


def child_statuses(config: TrackingConfig, base_dir: Path, parent_run_id: str) -> dict[str, str]:
    """Run id → status of every child of a sweep's parent run."""
    client, _, experiment_id = connect(config, base_dir)
    runs = _retry(
        lambda: client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"),
        "list the sweep's runs",
    )
    return {run.info.run_id: run.info.status for run in runs}


def finish_sweep_parent(config: TrackingConfig, base_dir: Path, parent_run_id: str, status: str,
                        tags: Mapping[str, str]) -> None:
    """Tag the sweep's parent run and end it with `status`."""
    client, tracking_uri, experiment_id = connect(config, base_dir)
    recorder = MlflowRecorder(client, parent_run_id, tracking_uri, experiment_id)
    if tags:
        recorder.set_tags(tags)
    recorder.terminate(status)
