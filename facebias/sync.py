"""`python -m facebias.sync FOLDER [--tracking-uri URI]`: upload a run that was recorded offline.

When the tracking server stays unreachable longer than `tracking.offline_after_s`, a run keeps going and writes
everything it recorded to <output_dir>/tracking_offline/ (run.json, params.json, tags.json, metrics.jsonl,
datasets.json, artifacts/). This command replays that folder into a store — the run's own server by default:
it continues the original run when the store has it, else creates the run in the same experiment; logs the
params, tags, every metric value (with its step and timestamp), the dataset inputs and the artifacts; and ends
the run with the status it ended with. Replaying twice is harmless: MLflow drops identical metric values, and a
run created by an earlier sync into the same store is continued (synced.json remembers it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from facebias.config import TrackingConfig
from facebias.errors import FacebiasError, TrackingError
from facebias.tracking import (
    METRIC_BATCH,
    RunJournal,
    dataset_inputs,
    default_artifact_location,
    is_http,
    open_client,
    probe_server,
    short_error,
    with_retries,
    write_json,
)

PARAM_BATCH = 100
FALLBACK_STATUS = "FAILED"
"""The status of a run whose process died before it could record one."""


@dataclass(frozen=True)
class SyncResult:
    """Where an offline run went: the store, the run id, whether the run had to be created, and what was sent."""

    tracking_uri: str
    run_id: str
    created: bool
    status: str
    metric_values: int
    artifact_files: int


def _target_run(client, journal: RunJournal, folder: Path, tracking_uri: str, experiment_id: str) -> tuple[str, bool]:
    """The run to continue (the original, or the one an earlier sync created in this store), else a new one."""
    from mlflow.exceptions import MlflowException

    earlier = folder / "synced.json"
    candidates = [journal.info.get("run_id")]
    if earlier.is_file():
        synced = json.loads(earlier.read_text())
        if synced.get("tracking_uri") == tracking_uri:
            candidates.insert(0, synced.get("run_id"))
    for run_id in filter(None, candidates):
        try:
            client.get_run(run_id)
        except MlflowException:
            continue
        return run_id, False
    tags = {**journal.tags, "facebias.offline_original_run_id": str(journal.info.get("run_id"))}
    run = with_retries(lambda: client.create_run(experiment_id, start_time=journal.info.get("start_time"), tags=tags,
                                                 run_name=journal.info.get("run_name")), "create the MLflow run")
    return run.info.run_id, True


def sync_offline_run(folder: Path, tracking_uri: str | None = None) -> SyncResult:
    """Replay the offline run in `folder` into `tracking_uri` (default: the store the run was meant for)."""
    from mlflow.entities import Metric, Param, RunTag

    journal = RunJournal.load(folder)
    uri = tracking_uri or journal.info["tracking_uri"]
    if is_http(uri) and (reason := probe_server(uri)) is not None:
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri} ({reason}): start it, or upload the run "
                            "to another store with --tracking-uri URI.")
    experiment = journal.info["experiment_name"]
    client, experiment_id = open_client(uri, experiment, default_artifact_location(TrackingConfig(), folder, uri))
    run_id, created = _target_run(client, journal, folder, uri, experiment_id)
    params = [Param(k, v) for k, v in journal.params.items()]
    for start in range(0, len(params), PARAM_BATCH):
        batch = params[start : start + PARAM_BATCH]
        with_retries(lambda b=batch: client.log_batch(run_id, params=b), "log params")
    tags = [RunTag(k, v) for k, v in journal.tags.items()]
    with_retries(lambda: client.log_batch(run_id, tags=tags), "set tags")
    metrics = [Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in journal.metrics]
    for start in range(0, len(metrics), METRIC_BATCH):
        batch = metrics[start : start + METRIC_BATCH]
        with_retries(lambda b=batch: client.log_batch(run_id, metrics=b), "log metrics")
    if journal.datasets:
        with_retries(lambda: client.log_inputs(run_id, datasets=dataset_inputs(journal.datasets)), "log the dataset")
    files = [path for path in (folder / "artifacts").rglob("*") if path.is_file()]
    if files:
        with_retries(lambda: client.log_artifacts(run_id, str(folder / "artifacts")), "log artifacts")
    status = journal.info.get("status")
    if status in (None, "RUNNING"):
        status = FALLBACK_STATUS
        with_retries(lambda: client.set_tag(run_id, "error", "the run's process ended before it recorded a status"),
                     "set tags")
    end_time = journal.info.get("end_time") or int(time.time() * 1000)
    with_retries(lambda: client.set_terminated(run_id, status, end_time), "end the run")
    write_json(folder / "synced.json", {"tracking_uri": uri, "run_id": run_id, "synced_at": int(time.time() * 1000)})
    return SyncResult(uri, run_id, created, status, len(metrics), len(files))


def main(argv: list[str] | None = None) -> int:
    """Command line: sync one offline run folder; prints where it went, or one sentence on error (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m facebias.sync", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run's tracking_offline folder")
    parser.add_argument("--tracking-uri", help="the store to upload to (default: the one the run was meant for)")
    args = parser.parse_args(argv)
    try:
        result = sync_offline_run(args.folder, args.tracking_uri)
    except FacebiasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"error: could not upload {args.folder}: {short_error(error)}", file=sys.stderr)
        return 1
    how = "created as" if result.created else "continued"
    print(f"synced {args.folder} to {result.tracking_uri}: {how} run {result.run_id}, status {result.status}, "
          f"{result.metric_values} metric values, {result.artifact_files} artifact files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
