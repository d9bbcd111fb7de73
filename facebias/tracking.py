"""Everything MLflow: the store location, the run lifecycle (FINISHED / FAILED / KILLED), params, curves, artifacts.

The rest of the project talks to a `Recorder`; only this module (and `facebias.sync`) imports mlflow. With
tracking disabled, `LocalRecorder` keeps the metrics in the run's output folder instead.

A tracking server (http:// or https://) is probed before a run starts, so an unreachable one fails within seconds.
During the run, `MlflowRecorder` keeps what it could not send and resends it when the server is back; a server that
stays away longer than `tracking.offline_after_s` makes the run continue offline, in <output_dir>/tracking_offline/,
which `python -m facebias.sync` uploads later.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import ssl
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facebias.config import TrackingConfig
from facebias.errors import TrackingError

MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000
METRIC_BATCH = 1000
DEFAULT_OFFLINE_AFTER_S = 300.0
OFFLINE_FOLDER = "tracking_offline"
"""Where, under a run's output directory, a run whose tracking server stayed away is written."""
OFFLINE_FORMAT = "facebias-offline-run/1"

log = logging.getLogger(__name__)


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


TRANSIENT_STORE_ERRORS: tuple[str, ...] = ("database is locked", "already exists", "UNIQUE constraint failed")
"""SQLite errors of several processes using one store at once: a lock, two processes creating its tables, or two
jobs of a sweep logging the same dataset input (on retry, MLflow finds the row the other one wrote)."""


def with_retries(action, what: str, attempts: int = 10):
    """Run `action`, retrying with backoff on the transient errors of a shared SQLite store."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:
            if not any(marker in str(error) for marker in TRANSIENT_STORE_ERRORS) or attempt == attempts - 1:
                raise
            time.sleep(min(0.1 * 2**attempt, 5.0))
    raise TrackingError(f"could not {what}")


HTTP_SCHEMES: tuple[str, ...] = ("http://", "https://")
PROBE_TIMEOUT_S = 5.0
UNREACHABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
"""HTTP statuses that mean "the server is not there right now" (a proxy or gateway answering for it)."""
FAIL_FAST_HTTP: dict[str, str] = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
"""MLflow's HTTP client retries a dead server for minutes; the recorder retries by itself, so it fails fast."""
MAX_BACKOFF_S = 5.0


def is_http(tracking_uri: str) -> bool:
    """Whether the store is a tracking server (http:// or https://)."""
    return tracking_uri.startswith(HTTP_SCHEMES)


def _tls_context() -> ssl.SSLContext:
    """TLS settings of MLflow's client: MLFLOW_TRACKING_INSECURE_TLS, ..._SERVER_CERT_PATH, ..._CLIENT_CERT_PATH."""
    context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        context.load_cert_chain(os.environ["MLFLOW_TRACKING_CLIENT_CERT_PATH"])
    return context


def probe_server(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the tracking server answers `<uri>/health` within `timeout`, else why not (e.g. "connection refused").

    Any answer below 500 counts: credentials are checked by the first real request.
    """
    url = tracking_uri.rstrip("/") + "/health"
    context = _tls_context() if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return None
    except urllib.error.HTTPError as error:
        if error.code not in UNREACHABLE_STATUSES and error.code < 500:
            return None
        return f"HTTP {error.code}"
    except OSError as error:
        return unreachable_reason(error) or short_error(error)


def check_server(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError, naming the URI, unless the tracking server answers `<uri>/health` within `timeout`."""
    reason = probe_server(tracking_uri, timeout)
    if reason is not None:
        raise TrackingError(f"cannot reach the MLflow tracking server at {tracking_uri} ({reason}): start it, or "
                            "point tracking.uri (or MLFLOW_TRACKING_URI) at a running server.")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it wraps: its cause or context, and the `reason` or first argument that urllib3 nests."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args[:1]]
        pending.extend(item for item in nested if isinstance(item, BaseException))


def unreachable_reason(error: BaseException) -> str | None:
    """Why the server could not be reached (refused, unknown host, timeout, gateway status), or None if it refused."""
    import requests

    causes = list(_causes(error))
    for kind, reason in ((ConnectionRefusedError, "connection refused"), (socket.gaierror, "unknown host"),
                         ((TimeoutError, requests.Timeout), "no answer in time"),
                         ((ConnectionError, requests.ConnectionError, requests.exceptions.RetryError),
                          "connection failed")):
        if any(isinstance(cause, kind) for cause in causes):
            return reason
    status = _http_status(error)
    return f"HTTP {status}" if status in UNREACHABLE_STATUSES else None


def _http_status(error: BaseException) -> int | None:
    status = getattr(error, "get_http_status_code", None)
    return status() if callable(status) else None


def short_error(error: BaseException) -> str:
    """The first line of an error's message, at most 300 characters."""
    text = (getattr(error, "message", None) or str(error) or type(error).__name__).strip().splitlines()[0]
    return text[:300]


def _access_error(tracking_uri: str, error: Exception, experiment: str) -> TrackingError:
    """One sentence for a store that answered but refused: no login, wrong credentials, no permission, or other."""
    status, user = _http_status(error), os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401 and user:
        return TrackingError(f"the MLflow tracking server at {tracking_uri} rejected the credentials of user {user!r}: "
                             "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.")
    if status == 401:
        return TrackingError(f"the MLflow tracking server at {tracking_uri} requires a login: set "
                             "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.")
    if status == 403:
        return TrackingError(f"the MLflow tracking server at {tracking_uri} denies user {user!r} access to experiment "
                             f"{experiment!r}: ask its administrator for EDIT permission, or choose another experiment "
                             "with tracking.experiment=….")
    return TrackingError(f"cannot use the MLflow tracking store {tracking_uri}: {short_error(error)}")


@contextmanager
def _fail_fast_http() -> Iterator[None]:
    """Apply FAIL_FAST_HTTP for the duration of one request, except where the user set those variables."""
    added = [name for name in FAIL_FAST_HTTP if name not in os.environ]
    os.environ.update({name: FAIL_FAST_HTTP[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def sync_command(folder: Path) -> str:
    """The command that uploads an offline run folder."""
    return f"python -m facebias.sync {shlex.quote(str(folder))}"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def write_json(path: Path, value: Any) -> None:
    """Write `value` as JSON to `path`, atomically."""
    write_atomically(path, json.dumps(value, indent=1))


@dataclass
class RunJournal:
    """Everything one run recorded: its identity (`info`), params, tags, every metric value, datasets, artifacts.

    Kept in memory while the run lasts, so that a run whose tracking server stays away can be written out whole
    (`save`, into <output_dir>/tracking_offline/) and replayed later by `python -m facebias.sync` (`load`).
    """

    info: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def save(self, folder: Path, copied: int = 0) -> int:
        """Write the journal to `folder`, copying the artifacts logged after the first `copied`; returns the count."""
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)
        for name in ("params", "tags", "datasets"):
            write_json(folder / f"{name}.json", getattr(self, name))
        write_atomically(folder / "metrics.jsonl", "".join(json.dumps(metric) + "\n" for metric in self.metrics))
        for source in self.artifacts[copied:]:
            if Path(source).is_dir():
                shutil.copytree(source, folder / "artifacts", dirs_exist_ok=True)
            else:
                shutil.copy2(source, folder / "artifacts")
        write_json(folder / "run.json", self.info)
        return len(self.artifacts)

    @classmethod
    def load(cls, folder: Path) -> RunJournal:
        """Read a folder written by `save`; TrackingError if it is not one."""
        if not (folder / "run.json").is_file():
            raise TrackingError(f"{folder} is not an offline run folder: it has no run.json (give the "
                                f"{OFFLINE_FOLDER} folder of a run's output directory).")
        try:
            info = json.loads((folder / "run.json").read_text())
            parts = {name: json.loads((folder / f"{name}.json").read_text()) for name in ("params", "tags", "datasets")}
            metrics_file = folder / "metrics.jsonl"
            metrics = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as error:
            raise TrackingError(f"the offline run folder {folder} is unreadable: {error}.") from error
        if info.get("format") != OFFLINE_FORMAT:
            raise TrackingError(f"{folder / 'run.json'} has format {info.get('format')!r}; this version of facebias "
                                f"reads {OFFLINE_FORMAT!r}.")
        return cls(info, metrics=metrics, **parts)


class MlflowRecorder:
    """Records into one MLflow run through an MlflowClient (no global active-run state), riding out server outages.

    Every record is journaled and queued, and the queue is sent in order. When the server cannot be reached the
    records stay queued and are retried, with exponential backoff, on later calls; `terminate` waits for the
    server. After `offline_after_s` of continuous failure the recorder goes offline: the whole journal, and every
    later record, is written to `offline_dir` for `python -m facebias.sync` (without `offline_dir`: TrackingError).
    An error that is not about reaching the server (e.g. a rejected value) is raised at once.
    """

    def __init__(self, client, run_id: str, tracking_uri: str, experiment_id: str, journal: RunJournal,
                 offline_dir: Path | None = None, offline_after_s: float = DEFAULT_OFFLINE_AFTER_S) -> None:
        self.client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.journal = journal
        self.offline_dir = offline_dir
        self.offline_after_s = offline_after_s
        self.queue: list[tuple[str, Callable[[], Any]]] = []
        self.failing_since: float | None = None
        self.failures = 0
        self.next_attempt = 0.0
        self.offline = False
        self.copied = 0

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        self.journal.params.update(params)
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            batch = items[start : start + 100]
            self._queue("log params", lambda b=batch: self.client.log_batch(self.run_id, params=b))
        self._send()

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.journal.metrics.extend({"key": m.key, "value": m.value, "timestamp": now, "step": step} for m in items)
        for start in range(0, len(items), METRIC_BATCH):
            batch = items[start : start + METRIC_BATCH]
            self._queue("log metrics", lambda b=batch: self.client.log_batch(self.run_id, metrics=b))
        self._send()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
        self.journal.tags.update({tag.key: tag.value for tag in items})
        self._queue("set tags", lambda: self.client.log_batch(self.run_id, tags=items))
        self._send()

    def log_artifacts(self, folder: Path) -> None:
        self.journal.artifacts.append(str(folder))
        self._queue("log artifacts", lambda: self.client.log_artifacts(self.run_id, str(folder)))
        self._send()

    def log_artifact(self, file: Path) -> None:
        self.journal.artifacts.append(str(file))
        self._queue("log an artifact", lambda: self.client.log_artifact(self.run_id, str(file)))
        self._send()

    def log_dataset(self, name: str, digest: str, source: str, sizes: Mapping[str, int]) -> None:
        """Record the dataset as an MLflow run input, once per split (context = split name)."""
        entries = [{"name": f"{name}-{split}", "digest": digest, "source": source,
                    "profile": json.dumps({"num_rows": count}), "context": split} for split, count in sizes.items()]
        self.journal.datasets.extend(entries)
        inputs = dataset_inputs(entries)
        self._queue("log the dataset", lambda: self.client.log_inputs(self.run_id, datasets=inputs))
        self._send()

    def terminate(self, status: str, wait: bool = True) -> None:
        """End the run with `status`; wait for the server (up to the offline limit) unless `wait` is False."""
        end_time = int(time.time() * 1000)
        self.journal.info.update(status=status, end_time=end_time)
        self._queue("end the run", lambda: self.client.set_terminated(self.run_id, status, end_time))
        if not wait:
            self.next_attempt = 0.0
        elif self.failing_since is not None:
            log.warning("waiting up to %.0f s for the MLflow tracking server at %s to send the run's last records",
                        self.failing_since + self.offline_after_s - time.monotonic(), self.tracking_uri)
        try:
            self._send(wait=wait)
            if self.queue:
                self._go_offline("the run ended while the server was unreachable")
        except KeyboardInterrupt:
            self._go_offline("interrupted while waiting for the server")
            raise
        if self.offline:
            log.warning("the run is saved in %s: upload it to %s with `%s`", self.offline_dir, self.tracking_uri,
                        sync_command(self.offline_dir))

    def view_hint(self) -> str:
        if self.offline:
            return (f"the tracking server at {self.tracking_uri} was unreachable, so the run is saved in "
                    f"{self.offline_dir}: upload it with `{sync_command(self.offline_dir)}`")
        if self.tracking_uri.startswith("sqlite:///"):
            return f"mlflow ui --backend-store-uri {self.tracking_uri}"
        return f"open {self.tracking_uri} (experiment id {self.experiment_id}, run {self.run_id})"

    def _queue(self, what: str, action: Callable[[], Any]) -> None:
        if not self.offline:
            self.queue.append((what, action))

    def _send(self, wait: bool = False) -> None:
        """Send the queue in order; on an outage keep it (`wait`: retry until the limit), then go offline."""
        while self.queue and not self.offline:
            delay = self.next_attempt - time.monotonic()
            if delay > 0 and not wait:
                return
            if delay > 0:
                time.sleep(delay)
            still_away = self._still_away()
            if still_away is not None:
                self._on_outage(still_away)
                continue
            what, action = self.queue[0]
            try:
                with _fail_fast_http():
                    with_retries(action, what)
            except Exception as error:
                reason = unreachable_reason(error)
                if reason is None:
                    self.queue.pop(0)
                    raise TrackingError(f"MLflow could not {what} for run {self.run_id} at {self.tracking_uri}: "
                                        f"{short_error(error)}") from error
                self._on_outage(reason)
                continue
            self.queue.pop(0)
            self._on_success()
        if self.offline:
            self.copied = self.journal.save(self.offline_dir, self.copied)

    def _still_away(self) -> str | None:
        """During an outage, a quick /health probe (a request to a black-holed server would block much longer)."""
        if self.failing_since is None or not is_http(self.tracking_uri):
            return None
        return probe_server(self.tracking_uri)

    def _on_outage(self, reason: str) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since, self.failures = now, 0
            log.warning("the MLflow tracking server at %s is unreachable (%s): keeping the run's records and "
                        "retrying for up to %g s", self.tracking_uri, reason, self.offline_after_s)
        self.failures += 1
        limit = self.failing_since + self.offline_after_s
        if now >= limit:
            self._go_offline(f"the server was unreachable for {self.offline_after_s:g} s ({reason})")
        else:
            self.next_attempt = min(now + min(2.0 ** (self.failures - 1), MAX_BACKOFF_S), limit)

    def _on_success(self) -> None:
        if self.failing_since is not None:
            log.warning("the MLflow tracking server at %s is back after %.0f s: sending the records kept meanwhile",
                        self.tracking_uri, time.monotonic() - self.failing_since)
        self.failing_since, self.failures, self.next_attempt = None, 0, 0.0

    def _go_offline(self, reason: str) -> None:
        if self.offline:
            return
        if self.offline_dir is None:
            raise TrackingError(f"the MLflow tracking server at {self.tracking_uri} could not record run "
                                f"{self.run_id}: {reason}.")
        self.offline = True
        self.queue.clear()
        self.journal.info["offline_reason"] = reason
        self.copied = self.journal.save(self.offline_dir, self.copied)
        log.warning("%s: writing run %s to %s instead", reason, self.run_id, self.offline_dir)


def dataset_inputs(entries: list[dict[str, Any]]) -> list:
    """MLflow DatasetInputs of journaled dataset entries (name, digest, source, profile, context)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [
        DatasetInput(
            Dataset(name=entry["name"], digest=entry["digest"], source_type="local", source=entry["source"],
                    profile=entry["profile"]),
            tags=[InputTag("mlflow.data.context", entry["context"])],
        )
        for entry in entries
    ]


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


def get_or_create_experiment(client, name: str, artifact_location: str | None) -> str:
    """The id of experiment `name`, created (with `artifact_location`) if it does not exist."""
    from mlflow.exceptions import MlflowException

    experiment = with_retries(lambda: client.get_experiment_by_name(name), "look up the experiment")
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
        experiment = with_retries(lambda: client.get_experiment_by_name(name), "look up the experiment")
        if experiment is None:
            raise
        return experiment.experiment_id


def open_client(tracking_uri: str, experiment: str, artifact_location: str | None = None):
    """An MlflowClient on `tracking_uri` and the id of `experiment` (created if needed); one sentence on failure.

    A tracking server is probed first, so that an unreachable one fails within seconds rather than after MLflow's
    minutes of retries; credentials come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    """
    from mlflow.tracking import MlflowClient

    if is_http(tracking_uri):
        check_server(tracking_uri)
    try:
        client = with_retries(lambda: MlflowClient(tracking_uri), "open the tracking store")
        return client, get_or_create_experiment(client, experiment, artifact_location)
    except TrackingError:
        raise
    except Exception as error:
        raise _access_error(tracking_uri, error, experiment) from error


def connect(config: TrackingConfig, base_dir: Path):
    """An MlflowClient on the configured store and the id of the configured experiment (created if needed).

    MLflow's process-wide current store is left alone: setting it would export MLFLOW_TRACKING_URI, which would
    then win over the `tracking.uri` of later runs in this process and of every child process.
    """
    tracking_uri = resolve_tracking_uri(config, base_dir)
    client, experiment = open_client(
        tracking_uri, config.experiment, default_artifact_location(config, base_dir, tracking_uri)
    )
    return client, tracking_uri, experiment


def open_mlflow_run(
    config: TrackingConfig, base_dir: Path, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None,
    offline_dir: Path | None = None, resume_run_id: str | None = None,
) -> MlflowRecorder:
    """Connect to the store, get or create the experiment, and start a RUNNING run.

    With `offline_dir`, a server that stays away longer than `config.offline_after_s` makes the run continue
    offline in that folder. With `resume_run_id`, that existing run is reopened (status RUNNING again) instead.
    """
    client, tracking_uri, experiment = connect(config, base_dir)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    try:
        if resume_run_id is not None:
            with_retries(lambda: client.update_run(resume_run_id, status="RUNNING"), "reopen the MLflow run")
            run = with_retries(lambda: client.get_run(resume_run_id), "read the MLflow run")
            experiment = run.info.experiment_id
        else:
            run = with_retries(lambda: client.create_run(experiment, run_name=run_name, tags=all_tags),
                               "create the MLflow run")
    except Exception as error:
        raise _access_error(tracking_uri, error, config.experiment) from error
    info = {"format": OFFLINE_FORMAT, "tracking_uri": tracking_uri, "experiment_name": config.experiment,
            "experiment_id": experiment, "run_id": run.info.run_id, "run_name": run.info.run_name,
            "start_time": run.info.start_time, "end_time": None, "status": "RUNNING"}
    journal = RunJournal(info, tags={**all_tags, "mlflow.runName": run.info.run_name})
    return MlflowRecorder(client, run.info.run_id, tracking_uri, experiment, journal, offline_dir,
                          config.offline_after_s)


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
    resume_run_id: str | None = None,
) -> Iterator[Recorder]:
    """A run that always ends: FINISHED on success, KILLED on Ctrl-C, FAILED (error logged) on any error.

    `on_open(run_id)` is called as soon as the run exists. If the tracking server goes away, records are kept
    and resent; past `config.offline_after_s` the run is written to <output_dir>/tracking_offline/ instead.
    With `resume_run_id`, that earlier run is reopened and continued rather than a new one started.
    """
    if not config.enabled:
        yield LocalRecorder(output_dir)
        return
    recorder = open_mlflow_run(config, base_dir, run_name, tags, parent_run_id, output_dir / OFFLINE_FOLDER,
                               resume_run_id)
    if on_open is not None:
        on_open(recorder.run_id)
    try:
        recorder.log_params(params)
        yield recorder
    except KeyboardInterrupt:
        try:
            recorder.set_tags({"error": "interrupted (KeyboardInterrupt)"})
        finally:
            recorder.terminate("KILLED", wait=False)
        raise
    except BaseException as error:
        try:
            recorder.set_tags({"error": _error_text(error)})
            (output_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
            recorder.log_artifact(output_dir / "error.txt")
        finally:
            recorder.terminate("FAILED")
        raise
    else:
        recorder.terminate("FINISHED")


SWEEP_ROLE_TAG = "facebias.role"
SWEEP_KEY_TAG = "facebias.sweep_key"


OUTPUT_DIR_TAG = "facebias.output_dir"
FINGERPRINT_TAG = "facebias.config_fingerprint"


def unfinished_runs(config: TrackingConfig, base_dir: Path, fingerprint: str) -> list[tuple[str, str | None]]:
    """(run id, output dir tag) of the experiment's runs with this config fingerprint that did not end FINISHED,
    newest first."""
    client, _, experiment = connect(config, base_dir)
    runs = with_retries(lambda: client.search_runs([experiment], f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'",
                                                   order_by=["attributes.start_time DESC"]), "search the runs")
    return [(run.info.run_id, run.data.tags.get(OUTPUT_DIR_TAG)) for run in runs if run.info.status != "FINISHED"]


def run_tags_of(config: TrackingConfig, base_dir: Path, run_id: str) -> dict[str, str] | None:
    """The tags of run `run_id`, or None if the store has no such run."""
    from mlflow.exceptions import MlflowException

    client, _, _ = connect(config, base_dir)
    try:
        return dict(client.get_run(run_id).data.tags)
    except MlflowException:
        return None


def logged_history(recorder: Recorder, key: str) -> dict[int, float]:
    """step → value of metric `key` as `recorder`'s run holds it (empty for a run not in MLflow)."""
    if not isinstance(recorder, MlflowRecorder):
        return {}
    return {metric.step: metric.value for metric in recorder.client.get_metric_history(recorder.run_id, key)}


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

    client = with_retries(lambda: MlflowClient(tracking_uri), "open the tracking store")
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
    with_retries(lambda: client.log_artifacts(run_id, str(folder), artifact_path), "log artifacts")


def download_artifact(tracking_uri: str, run_id: str, artifact_path: str, folder: Path) -> Path | None:
    """Download one artifact of run `run_id` into `folder`; returns the local path, or None when the run has no
    such artifact."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(with_retries(lambda: client.download_artifacts(run_id, artifact_path, str(folder)),
                                 "download an artifact"))
    except (MlflowException, OSError):
        return None


def open_sweep_parent(config: TrackingConfig, base_dir: Path, name: str, key: str, tags: Mapping[str, str]) -> str:
    """The parent run of a sweep: the latest one with the same sweep key (resumed, RUNNING again), else a new one."""
    client, _, experiment_id = connect(config, base_dir)
    found = with_retries(
        lambda: client.search_runs(
            [experiment_id], f"tags.`{SWEEP_KEY_TAG}` = '{key}'", order_by=["attributes.start_time DESC"],
            max_results=1,
        ),
        "look up the sweep",
    )
    all_tags = {**tags, SWEEP_ROLE_TAG: "sweep", SWEEP_KEY_TAG: key}
    if found:
        run_id = found[0].info.run_id
        with_retries(lambda: client.update_run(run_id, status="RUNNING"), "reopen the sweep run")
        with_retries(lambda: client.delete_tag(run_id, "facebias.failed_jobs"), "reset the sweep run") if (
            "facebias.failed_jobs" in found[0].data.tags
        ) else None
        _set_tags(client, run_id, {**all_tags, "facebias.resumed": "true"})
        return run_id
    run = with_retries(lambda: client.create_run(experiment_id, run_name=name, tags=all_tags), "create the sweep run")
    return run.info.run_id


def finished_child(config: TrackingConfig, base_dir: Path, parent_run_id: str, fingerprint: str):
    """The FINISHED child run of `parent_run_id` with this config fingerprint, or None."""
    client, _, experiment_id = connect(config, base_dir)
    runs = with_retries(
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
    runs = with_retries(
        lambda: client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"),
        "list the sweep's runs",
    )
    return {run.info.run_id: run.info.status for run in runs}


def finish_sweep_parent(config: TrackingConfig, base_dir: Path, parent_run_id: str, status: str,
                        tags: Mapping[str, str]) -> None:
    """Tag the sweep's parent run and end it with `status`."""
    client, _, _ = connect(config, base_dir)
    if tags:
        _set_tags(client, parent_run_id, tags)
    with_retries(lambda: client.set_terminated(parent_run_id, status), "end the run")


def _set_tags(client, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
    with_retries(lambda: client.log_batch(run_id, tags=items), "set tags")
