"""Uploading a run that was recorded offline (`facebias.tracking.offline`) into a store.

The run's own server by default: the original run is continued when the store has it, else the run is created in
the same experiment with its name, start time and tags; then its params, tags, every metric value (with its step
and timestamp), the dataset inputs, the artifacts and the model (as the run's LoggedModel) are logged, and the run
ends with the status it ended with. Uploading twice is harmless: the store drops identical metric values, a run
created by an earlier upload into the same store is continued (synced.json remembers it), and a run that has its
model keeps it.

The offline folder names its store without credentials (facebias.redaction), so a store whose URI had a
password is reached with the URI given (`tracking_uri=`), else MLFLOW_TRACKING_URI when it names the same store, else
the recorded URI without the password (PostgreSQL then reads it from ~/.pgpass or PGPASSWORD).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from facebias.errors import TrackingError
from facebias.identity import ERROR_TAG
from facebias.io import write_json
from facebias.redaction import MASK, redacted
from facebias.tracking.models import ModelUpload, run_model_id
from facebias.tracking.offline import RunJournal, dataset_inputs
from facebias.tracking.server import is_http, probe_server
from facebias.tracking.store import default_artifact_location, open_client, with_retries

FALLBACK_STATUS = "FAILED"
"""The status of a run whose process died before it could record one."""


@dataclass(frozen=True)
class SyncResult:
    """Where an offline run went: the store, the run id, whether the run had to be created, and what was sent."""

    tracking_uri: str
    """Without credentials: as it may be shown."""
    run_id: str
    created: bool
    status: str
    metric_values: int
    artifact_files: int


def _target_run(client, journal: RunJournal, folder: Path, tracking_uri: str, experiment_id: str,
                origin_tag: str | None) -> tuple[str, bool]:
    """The run to continue (the original, or the one an earlier sync created in this store), else a new one."""
    from mlflow.exceptions import MlflowException

    earlier = folder / "synced.json"
    candidates = [journal.info.get("run_id")]
    if earlier.is_file():
        synced = json.loads(earlier.read_text())
        if synced.get("tracking_uri") == redacted(tracking_uri):
            candidates.insert(0, synced.get("run_id"))
    for run_id in filter(None, candidates):
        try:
            client.get_run(run_id)
        except MlflowException:
            continue
        return run_id, False
    tags = {origin_tag: str(journal.info.get("run_id"))} if origin_tag else {}
    run = with_retries(lambda: client.create_run(experiment_id, start_time=journal.info.get("start_time"), tags=tags,
                                                 run_name=journal.info.get("run_name")), "create the MLflow run")
    return run.info.run_id, True


def store_uri(recorded: str, given: str | None = None) -> str:
    """The URI to upload to: `given`; else MLFLOW_TRACKING_URI when it is the `recorded` store with its credentials;
    else `recorded` with its redacted password left out (`postgresql://alice:***@h/db` → `postgresql://alice@h/db`)."""
    if given:
        return given
    environment = os.environ.get("MLFLOW_TRACKING_URI")
    if environment and redacted(environment) == recorded:
        return environment
    return recorded.replace(f":{MASK}@", "@", 1)


def sync_offline_run(folder: Path, tracking_uri: str | None = None, origin_tag: str | None = None) -> SyncResult:
    """Replay the offline run in `folder` into `tracking_uri` (default: the store the run was meant for).

    A run that has to be created gets the tag `origin_tag` (if given) naming the original run id. The journal's
    tags are set after the run exists, in batches that MLflow splits and truncates to its limits.
    """
    from mlflow.entities import Metric, Param, RunTag

    journal = RunJournal.load(folder)
    uri = store_uri(journal.info["tracking_uri"], tracking_uri)
    if is_http(uri) and (reason := probe_server(uri)) is not None:
        raise TrackingError(f"cannot reach the MLflow tracking server at {redacted(uri)} ({reason}): start it, or "
                            "upload the run to another store with tracking_uri=URI.")
    experiment = journal.info["experiment_name"]
    client, experiment_id = open_client(uri, experiment, default_artifact_location(uri))
    run_id, created = _target_run(client, journal, folder, uri, experiment_id, origin_tag)
    params = [Param(k, v) for k, v in journal.params.items()]
    with_retries(lambda: client.log_batch(run_id, params=params), "log params")
    tags = [RunTag(k, v) for k, v in journal.tags.items()]
    with_retries(lambda: client.log_batch(run_id, tags=tags), "set tags")
    metrics = [Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in journal.metrics]
    with_retries(lambda: client.log_batch(run_id, metrics=metrics), "log metrics")
    if journal.datasets:
        with_retries(lambda: client.log_inputs(run_id, datasets=dataset_inputs(journal.datasets)), "log the dataset")
    files = [path for path in (folder / "artifacts").rglob("*") if path.is_file()]
    if files:
        with_retries(lambda: client.log_artifacts(run_id, str(folder / "artifacts")), "log artifacts")
    if journal.model is not None and run_model_id(client, run_id) is None:
        ModelUpload(Path(journal.model), run_id, experiment_id, journal.params, journal.metrics).send(client)
    status = journal.info.get("status")
    if status in (None, "RUNNING"):
        status = FALLBACK_STATUS
        with_retries(lambda: client.set_tag(run_id, ERROR_TAG, "the run's process ended before it recorded a status"),
                     "set tags")
    end_time = journal.info.get("end_time") or int(time.time() * 1000)
    with_retries(lambda: client.set_terminated(run_id, status, end_time), "end the run")
    write_json(folder / "synced.json", {"tracking_uri": redacted(uri), "run_id": run_id,
                                        "synced_at": int(time.time() * 1000)})
    return SyncResult(redacted(uri), run_id, created, status, len(metrics), len(files))
