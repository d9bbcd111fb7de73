"""Opening and ending MLflow runs: a training run's lifecycle (FINISHED / FAILED / KILLED), a sweep's parent run,
the run of a job that failed before it could open one, and files attached to a run afterwards.

A training run that fails leaves its error as the `error` tag and as error.txt among its artifacts. Every run this
module creates carries MLflow's context tags (`provenance_tags`: source file, git commit, user, …), as runs started
with `mlflow.start_run` do.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from facebias.errors import error_text
from facebias.identity import ERROR_TAG
from facebias.redaction import redacted, redacted_text
from facebias.tracking.offline import OFFLINE_FOLDER, OFFLINE_FORMAT, RunJournal
from facebias.tracking.queries import tag_filter
from facebias.tracking.recorder import LocalRecorder, MlflowRecorder, Recorder
from facebias.tracking.server import access_error
from facebias.tracking.store import TrackingStore, client_for, connect, with_retries

log = logging.getLogger(__name__)


def provenance_tags() -> dict[str, str]:
    """MLflow's context tags of this process: mlflow.source.name, .type, .git.commit (and repoURL, branch),
    mlflow.user — what `mlflow.start_run` adds; `MlflowClient.create_run` adds none.

    MLflow takes the commit from the main file's repository; when that is none (a notebook, pytest, a script
    elsewhere), the commit, branch and repository URL are those of the checkout the facebias code runs from."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url

    tags = {key: str(value) for key, value in resolve_tags().items()}
    if "mlflow.source.git.commit" not in tags:
        code = str(Path(__file__).resolve().parents[1])
        found = {"mlflow.source.git.commit": get_git_commit(code), "mlflow.source.git.branch": get_git_branch(code),
                 "mlflow.source.git.repoURL": get_git_repo_url(code)}
        tags.update({key: value for key, value in found.items() if value})
    return tags


@contextmanager
def system_metrics(enabled: bool, recorder: MlflowRecorder, resumed: bool) -> Iterator[None]:
    """When `enabled` (`tracking.system_metrics`), MLflow's system-metrics monitor samples CPU, memory, disk,
    network (and GPU where pynvml finds one) into `system/…` metrics while the block runs (every 10 s, or as
    MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says)."""
    if not enabled:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(recorder.run_id, resume_logging=resumed, tracking_uri=recorder.tracking_uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def open_mlflow_run(
    store: TrackingStore, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None,
    offline_dir: Path | None = None, resume_run_id: str | None = None,
) -> MlflowRecorder:
    """Connect to the store, get or create the experiment, and start a RUNNING run.

    With `offline_dir`, a server that stays away longer than `store.offline_after_s` makes the run continue
    offline in that folder. With `resume_run_id`, that existing run is reopened (status RUNNING again) instead.
    """
    client, experiment = connect(store)
    tracking_uri = store.uri
    all_tags = {key: redacted_text(str(value)) for key, value in {**provenance_tags(), **tags}.items()}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    try:
        if resume_run_id is not None:
            with_retries(lambda: client.update_run(resume_run_id, status="RUNNING"), "reopen the MLflow run")
            run = with_retries(lambda: client.get_run(resume_run_id), "read the MLflow run")
            if ERROR_TAG in run.data.tags:  # the interruption it is resumed from
                with_retries(lambda: client.delete_tag(resume_run_id, ERROR_TAG), "clear the run's error tag")
            experiment = run.info.experiment_id
        else:
            run = with_retries(lambda: client.create_run(experiment, run_name=run_name, tags=all_tags),
                               "create the MLflow run")
    except Exception as error:
        raise access_error(tracking_uri, error, store.experiment) from error
    info = {"format": OFFLINE_FORMAT, "tracking_uri": redacted(tracking_uri), "experiment_name": store.experiment,
            "experiment_id": experiment, "run_id": run.info.run_id, "run_name": run.info.run_name,
            "start_time": run.info.start_time, "end_time": None, "status": "RUNNING"}
    journal = RunJournal(info, tags={**all_tags, "mlflow.runName": run.info.run_name})
    return MlflowRecorder(client, run.info.run_id, tracking_uri, experiment, journal, offline_dir,
                          store.offline_after_s)


def _log_error_file(recorder: MlflowRecorder, output_dir: Path, error: BaseException) -> None:
    """error.txt (the traceback) among the run's artifacts, unless the disk refuses it (e.g. the disk is full)."""
    try:
        (output_dir / "error.txt").write_text(redacted_text("".join(traceback.format_exception(error))))
    except OSError as failure:
        log.warning("could not write %s (%s); the run's error tag has the error", output_dir / "error.txt", failure)
        return
    recorder.log_artifact(output_dir / "error.txt")


@dataclass(frozen=True)
class RunRequest:
    """A training run to open: its name, output folder, tags and params; in a sweep, its parent run; `on_open(run id)`
    called as soon as it exists; the earlier run it continues (`resume_run_id`); and whether MLflow samples system
    metrics into it (`tracking.system_metrics`)."""

    name: str
    output_dir: Path
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    on_open: Callable[[str], None] | None = None
    resume_run_id: str | None = None
    system_metrics: bool = False


@contextmanager
def tracked_run(store: TrackingStore | None, request: RunRequest) -> Iterator[Recorder]:
    """A run that always ends: FINISHED on success, KILLED on Ctrl-C or an exit request, FAILED (error logged) on
    any error; with no store (tracking disabled), a `LocalRecorder` writing into the output folder.

    If the tracking server goes away, records are kept and resent; past `store.offline_after_s` the run is written
    to <output_dir>/tracking_offline/ instead. With `request.resume_run_id`, that earlier run is reopened and
    continued rather than a new one started.
    """
    output_dir = request.output_dir
    if store is None:
        yield LocalRecorder(output_dir)
        return
    recorder = open_mlflow_run(store, request.name, request.tags, request.parent_run_id, output_dir / OFFLINE_FOLDER,
                               request.resume_run_id)
    if request.on_open is not None:
        request.on_open(recorder.run_id)
    try:
        recorder.log_params(request.params)
        with system_metrics(request.system_metrics, recorder, request.resume_run_id is not None):
            yield recorder
    except (KeyboardInterrupt, SystemExit) as interruption:
        # Ctrl-C, or a process told to exit mid-run (submitit does so when Slurm preempts a job or its time is up)
        try:
            recorder.set_tags({ERROR_TAG: f"interrupted ({type(interruption).__name__})"})
        finally:
            recorder.terminate("KILLED", wait=False)
        raise
    except BaseException as error:
        try:
            recorder.set_tags({ERROR_TAG: error_text(error)})
            _log_error_file(recorder, output_dir, error)
        finally:
            recorder.terminate("FAILED")
        raise
    else:
        recorder.terminate("FINISHED")


def record_failed_run(
    store: TrackingStore, run_name: str, tags: Mapping[str, str], parent_run_id: str, error: str
) -> str:
    """A FAILED child run for a job that failed before its own run existed (e.g. a bad value for that job)."""
    recorder = open_mlflow_run(store, run_name, tags, parent_run_id)
    recorder.set_tags({ERROR_TAG: error})
    recorder.terminate("FAILED")
    return recorder.run_id


def open_sweep_parent(store: TrackingStore, name: str, *, where: Mapping[str, str],
                      tags: Mapping[str, str], reopened_tags: Mapping[str, str], stale_tags: Iterable[str]) -> str:
    """The parent run of a sweep: the latest run tagged `where`, reopened (RUNNING again, its `stale_tags` deleted,
    `reopened_tags` added), else a new run `name`; either way tagged `tags` and `where`."""
    client, experiment_id = connect(store)
    found = with_retries(
        lambda: client.search_runs(
            [experiment_id], tag_filter(where), order_by=["attributes.start_time DESC"], max_results=1,
        ),
        "look up the sweep",
    )
    all_tags = {key: redacted_text(str(value)) for key, value in {**provenance_tags(), **tags, **where}.items()}
    if not found:
        run = with_retries(lambda: client.create_run(experiment_id, run_name=name, tags=all_tags),
                           "create the sweep run")
        return run.info.run_id
    run_id = found[0].info.run_id
    with_retries(lambda: client.update_run(run_id, status="RUNNING"), "reopen the sweep run")
    for stale in (tag for tag in stale_tags if tag in found[0].data.tags):
        with_retries(lambda tag=stale: client.delete_tag(run_id, tag), "reset the sweep run")
    set_run_tags(client, run_id, {**all_tags, **reopened_tags})
    return run_id


def end_run(store: TrackingStore, run_id: str, status: str, tags: Mapping[str, str]) -> None:
    """Tag run `run_id` (a sweep's parent, or a run whose process died) and end it with `status`."""
    client, _ = connect(store)
    if tags:
        set_run_tags(client, run_id, tags)
    with_retries(lambda: client.set_terminated(run_id, status), "end the run")


def log_folder(store: TrackingStore, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
    """Log every file of `folder` as artifacts of run `run_id`."""
    client = client_for(store.uri)
    with_retries(lambda: client.log_artifacts(run_id, str(folder), artifact_path), "log artifacts")


def log_file(store: TrackingStore, run_id: str, file: Path, artifact_path: str | None = None) -> None:
    """Log one file as an artifact of run `run_id`."""
    client = client_for(store.uri)
    with_retries(lambda: client.log_artifact(run_id, str(file), artifact_path), "log an artifact")


def set_run_tags(client, run_id: str, tags: Mapping[str, str]) -> None:
    """Set `tags` on run `run_id` in one batch (MLflow splits it, and truncates over-long values), without
    credentials."""
    from mlflow.entities import RunTag

    items = [RunTag(k, redacted_text(str(v))) for k, v in tags.items()]
    with_retries(lambda: client.log_batch(run_id, tags=items), "set tags")
