"""Reading runs back, for resume, sweeps and the report: runs by tag, a run's tags and metric history, a sweep.

Every query takes the tags it matches on (`where`: tag name → value); the names are the caller's business
(`facebias.identity`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from facebias.errors import TrackingError
from facebias.redaction import redacted
from facebias.tracking.recorder import MlflowRecorder, Recorder
from facebias.tracking.store import TrackingStore, client_for, connect, first_use, with_retries


def tag_filter(where: Mapping[str, str]) -> str:
    """The MLflow search filter of runs whose tags have these values."""
    return " and ".join(f"tags.`{name}` = '{value}'" for name, value in where.items())


def unfinished_runs(store: TrackingStore, where: Mapping[str, str], read_tag: str) -> list[tuple[str, str, str | None]]:
    """(run id, status, its tag `read_tag`) of the experiment's runs tagged `where` that did not end FINISHED,
    newest first."""
    client, experiment = connect(store)
    runs = with_retries(lambda: client.search_runs([experiment], tag_filter(where),
                                                   order_by=["attributes.start_time DESC"]), "search the runs")
    return [(run.info.run_id, run.info.status, run.data.tags.get(read_tag)) for run in runs
            if run.info.status != "FINISHED"]


def run_state(store: TrackingStore, run_id: str) -> tuple[str, dict[str, str]] | None:
    """The status and tags of run `run_id`, or None if the store has no such run."""
    from mlflow.exceptions import MlflowException

    client, _ = connect(store)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return run.info.status, dict(run.data.tags)


def logged_history(recorder: Recorder, key: str) -> dict[int, float]:
    """step → value of metric `key` as `recorder`'s run holds it (empty for a run not in MLflow)."""
    if not isinstance(recorder, MlflowRecorder):
        return {}
    return {metric.step: metric.value for metric in recorder.client.get_metric_history(recorder.run_id, key)}


def logged_metric_keys(recorder: Recorder) -> set[str]:
    """The metrics `recorder`'s run already holds (none for a run not in MLflow)."""
    if not isinstance(recorder, MlflowRecorder):
        return set()
    return set(recorder.client.get_run(recorder.run_id).data.metrics)


def load_sweep_runs(store: TrackingStore, parent_run_id: str | None = None, *, parent_tags: Mapping[str, str]):
    """The parent run of a sweep (the given one, else the most recent run tagged `parent_tags`) and its children.

    Returns `(parent_run, children)`; `children` is a DataFrame with mlflow.search_runs' columns (run_id, status,
    tags.*, params.*, metrics.*). Raises TrackingError with a clear sentence when there is nothing to read. The store
    is read through its URI's client: MLflow's process-wide tracking URI (and MLFLOW_TRACKING_URI) stay untouched.
    """
    from mlflow.exceptions import MlflowException

    tracking_uri, experiment = store.uri, store.experiment
    client, found = first_use(tracking_uri, experiment, lambda client: client.get_experiment_by_name(experiment))
    tracking_uri = redacted(tracking_uri)
    if found is None:
        raise TrackingError(f"no MLflow experiment named {experiment!r} in {tracking_uri}: run a sweep first, or "
                            "name the experiment with tracking.experiment=….")
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException as error:
            raise TrackingError(f"no run {parent_run_id!r} in {tracking_uri}: give the run id of a sweep's parent "
                                "(the sweep prints it as it ends), or leave parent unset for the most recent "
                                "sweep.") from error
    else:
        parents = client.search_runs(
            [found.experiment_id], tag_filter(parent_tags), order_by=["attributes.start_time DESC"], max_results=1
        )
        if not parents:
            raise TrackingError(f"no sweep found in experiment {experiment!r} of {tracking_uri}: run one with "
                                "`python -m facebias.train -m 'experiment=glob(exp*)'`, or pass parent=<run id>.")
        parent = parents[0]
    children = all_runs(client, parent.info.experiment_id, tag_filter({"mlflow.parentRunId": parent.info.run_id}))
    return parent, runs_frame(children)


def all_runs(client, experiment_id: str, filter_string: str) -> list:
    """Every run of the experiment matching `filter_string`, oldest first (all pages)."""
    runs, token = [], None
    while True:
        page = with_retries(lambda token=token: client.search_runs(
            [experiment_id], filter_string, order_by=["attributes.start_time ASC"], page_token=token), "search runs")
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def runs_frame(runs: list) -> pd.DataFrame:
    """Runs as one row each, with mlflow.search_runs' columns: run_id, experiment_id, status, artifact_uri,
    start_time, end_time (UTC), then metrics.*, params.* and tags.* (missing values NaN / None)."""
    rows = []
    for run in runs:
        info = run.info
        rows.append({
            "run_id": info.run_id, "experiment_id": info.experiment_id, "status": info.status,
            "artifact_uri": info.artifact_uri, "start_time": info.start_time, "end_time": info.end_time,
            **{f"metrics.{key}": value for key, value in run.data.metrics.items()},
            **{f"params.{key}": value for key, value in run.data.params.items()},
            **{f"tags.{key}": value for key, value in run.data.tags.items()},
        })
    frame = pd.DataFrame(rows, columns=None if rows else ["run_id", "experiment_id", "status", "artifact_uri",
                                                          "start_time", "end_time"])
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def finished_child(store: TrackingStore, parent_run_id: str, where: Mapping[str, str]):
    """The FINISHED child run of `parent_run_id` tagged `where`, or None."""
    client, experiment_id = connect(store)
    runs = with_retries(
        lambda: client.search_runs(
            [experiment_id],
            f"{tag_filter({'mlflow.parentRunId': parent_run_id, **where})} and attributes.status = 'FINISHED'",
            max_results=1,
        ),
        "look up finished jobs",
    )
    return runs[0] if runs else None


def download_artifact(store: TrackingStore, run_id: str, artifact_path: str, folder: Path) -> Path | None:
    """Download one artifact of run `run_id` into `folder`; returns the local path, or None when the run has no
    such artifact."""
    from mlflow.exceptions import MlflowException

    client = client_for(store.uri)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(with_retries(lambda: client.download_artifacts(run_id, artifact_path, str(folder)),
                                 "download an artifact"))
    except (MlflowException, OSError):
        return None
