"""What a run records — metrics, tags, artifacts, its dataset — and how the record gets to the store.

`MlflowRecorder` records into one MLflow run and rides out a tracking server that goes away: what it could not
send is kept in order and resent; a server away longer than `tracking.offline_after_s` makes the run continue
offline (`facebias.tracking.offline`). `LocalRecorder` is the recorder of a run with tracking disabled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from facebias.errors import TrackingError
from facebias.redaction import redacted, redacted_text
from facebias.tracking.models import ModelUpload, logged_model_uri, register_model
from facebias.tracking.offline import RunJournal, dataset_inputs, sync_command
from facebias.tracking.server import fail_fast_http, is_http, probe_server, short_error, unreachable_reason
from facebias.tracking.store import with_retries
from facebias.tracking.ui import view_hint

DEFAULT_OFFLINE_AFTER_S = 300.0
MAX_BACKOFF_S = 5.0

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """What a run records; implemented by MlflowRecorder and LocalRecorder."""

    run_id: str

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None: ...

    def log_artifacts(self, folder: Path) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_dataset(self, name: str, digest: str, source: str, sizes: Mapping[str, int]) -> None: ...

    def log_model(self, folder: Path, final: Sequence[str]) -> None: ...

    def model_uri(self) -> str | None: ...

    def view_hint(self) -> str: ...

    def delivered(self) -> bool: ...

    def register_model(self, name: str) -> str | None: ...


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
            stream.write(json.dumps({key: redacted_text(str(value)) for key, value in tags.items()}) + "\n")

    def log_artifacts(self, folder: Path) -> None:
        """Nothing to copy: the artifacts already live in the output folder."""

    def log_dataset(self, name: str, digest: str, source: str, sizes: Mapping[str, int]) -> None:
        """Nothing to record beyond the dataset card in the output folder."""

    def log_model(self, folder: Path, final: Sequence[str]) -> None:
        """Nothing to log: the model folder stays in the output folder."""

    def model_uri(self) -> str | None:
        """None: no store holds the model."""
        return None

    def view_hint(self) -> str:
        return f"tracking was disabled; results are in {self.output_dir}"

    def delivered(self) -> bool:
        """Never: the output folder holds the only copy of what the run wrote."""
        return False

    def register_model(self, name: str) -> str | None:
        log.warning("tracking is disabled: the model is not registered as %r", name)
        return None


class MlflowRecorder:
    """Records into one MLflow run through an MlflowClient (no global active-run state), riding out server outages.

    Every record is journaled and queued, and the queue is sent in order. When the server cannot be reached the
    records stay queued and are retried, with exponential backoff, on later calls; `terminate` waits for the
    server. After `offline_after_s` of continuous failure the recorder goes offline: the whole journal, and every
    later record, is written to `offline_dir` for `python -m facebias.sync` (without `offline_dir`: TrackingError).
    An error that is not about reaching the server (e.g. a rejected value) is raised at once. Splitting records
    into batches of allowed sizes, and truncating over-long values, is left to MlflowClient.log_batch and the store.
    Params, tags and dataset sources are recorded, and the store named in messages, without credentials
    (facebias.redaction); `tracking_uri` itself, with them, is only used to connect.
    """

    def __init__(self, client, run_id: str, tracking_uri: str, experiment_id: str, journal: RunJournal,
                 offline_dir: Path | None = None, offline_after_s: float = DEFAULT_OFFLINE_AFTER_S) -> None:
        self.client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.shown_uri = redacted(tracking_uri)
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
        self.model: ModelUpload | None = None

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        params = {key: redacted_text(str(value)) for key, value in params.items()}
        self.journal.params.update(params)
        items = [Param(k, v) for k, v in params.items()]
        if items:
            self._queue("log params", lambda: self.client.log_batch(self.run_id, params=items))
        self._send()

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.journal.metrics.extend({"key": m.key, "value": m.value, "timestamp": now, "step": step} for m in items)
        if items:
            self._queue("log metrics", lambda: self.client.log_batch(self.run_id, metrics=items))
        self._send()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, redacted_text(str(v))) for k, v in tags.items()]
        self.journal.tags.update({tag.key: tag.value for tag in items})
        if items:
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
        entries = [{"name": f"{name}-{split}", "digest": digest, "source": redacted_text(source),
                    "profile": json.dumps({"num_rows": count}), "context": split} for split, count in sizes.items()]
        self.journal.datasets.extend(entries)
        inputs = dataset_inputs(entries)
        self._queue("log the dataset", lambda: self.client.log_inputs(self.run_id, datasets=inputs))
        self._send()

    def log_model(self, folder: Path, final: Sequence[str]) -> None:
        """Log the saved MLflow model `folder` as the run's LoggedModel, with the run's params and its final `val/…`
        and `test/…` metrics (the keys `final`) linked to it (`ModelUpload`)."""
        self.journal.model = str(folder)
        upload = self.model = ModelUpload(folder, self.run_id, self.experiment_id, dict(self.journal.params),
                                          list(self.journal.metrics), list(final))
        self._queue("log the model", lambda: upload.send(self.client))
        self._send()

    def model_uri(self) -> str | None:
        """`models:/<model id>` once the store holds the run's LoggedModel, else None."""
        if self.model is None or self.model.model_id is None or not self.delivered():
            return None
        return logged_model_uri(self.model.model_id)

    def terminate(self, status: str, wait: bool = True) -> None:
        """End the run with `status`; wait for the server (up to the offline limit) unless `wait` is False."""
        end_time = int(time.time() * 1000)
        self.journal.info.update(status=status, end_time=end_time)
        self._queue("end the run", lambda: self.client.set_terminated(self.run_id, status, end_time))
        if not wait:
            self.next_attempt = 0.0
        elif self.failing_since is not None:
            log.warning("waiting up to %.0f s for the MLflow tracking server at %s to send the run's last records",
                        self.failing_since + self.offline_after_s - time.monotonic(), self.shown_uri)
        try:
            self._send(wait=wait)
            if self.queue:
                self._go_offline("the run ended while the server was unreachable")
        except KeyboardInterrupt:
            self._go_offline("interrupted while waiting for the server")
            raise
        if self.offline and self.offline_dir is not None:
            log.warning("the run is saved in %s: upload it to %s with `%s`", self.offline_dir, self.shown_uri,
                        sync_command(self.offline_dir))

    def view_hint(self) -> str:
        if self.offline and self.offline_dir is not None:
            return (f"the tracking server at {self.shown_uri} was unreachable, so the run is saved in "
                    f"{self.offline_dir}: upload it with `{sync_command(self.offline_dir)}`")
        return view_hint(self.tracking_uri, self.experiment_id)

    def delivered(self) -> bool:
        """Whether the store holds everything recorded so far (nothing queued, not offline)."""
        return not self.offline and not self.queue

    def register_model(self, name: str) -> str | None:
        """Register the run's logged model as a new version of `name` in the store's Model Registry; None (with a
        warning) while the store does not hold the model yet (an outage)."""
        if self.model is None or self.model.model_id is None or not self.delivered():
            log.warning("the model is not registered as %r: the tracking server has not received it yet", name)
            return None
        return register_model(self.tracking_uri, self.run_id, self.model.model_id, name)

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
                with fail_fast_http():
                    with_retries(action, what)
            except Exception as error:
                reason = unreachable_reason(error)
                if reason is None:
                    self.queue.pop(0)
                    raise TrackingError(f"MLflow could not {what} for run {self.run_id} at {self.shown_uri}: "
                                        f"{redacted_text(short_error(error))}") from error
                self._on_outage(reason)
                continue
            self.queue.pop(0)
            self._on_success()
        if self.offline and self.offline_dir is not None:
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
                        "retrying for up to %g s", self.shown_uri, reason, self.offline_after_s)
        self.failures += 1
        limit = self.failing_since + self.offline_after_s
        if now >= limit:
            self._go_offline(f"the server was unreachable for {self.offline_after_s:g} s ({reason})")
        else:
            self.next_attempt = min(now + min(2.0 ** (self.failures - 1), MAX_BACKOFF_S), limit)

    def _on_success(self) -> None:
        if self.failing_since is not None:
            log.warning("the MLflow tracking server at %s is back after %.0f s: sending the records kept meanwhile",
                        self.shown_uri, time.monotonic() - self.failing_since)
        self.failing_since, self.failures, self.next_attempt = None, 0, 0.0

    def _go_offline(self, reason: str) -> None:
        if self.offline:
            return
        if self.offline_dir is None:
            raise TrackingError(f"the MLflow tracking server at {self.shown_uri} could not record run "
                                f"{self.run_id}: {reason}.")
        self.offline = True
        self.queue.clear()
        self.journal.info["offline_reason"] = reason
        self.copied = self.journal.save(self.offline_dir, self.copied)
        log.warning("%s: writing run %s to %s instead", reason, self.run_id, self.offline_dir)
