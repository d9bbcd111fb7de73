"""Where runs are recorded, and opening that store: the tracking URI, one MlflowClient per URI, the experiment.

The jobs of a sweep may share one SQLite store from several processes; its "database is locked" and table-creation
races are retried here (`with_retries`; MLflow itself retries only database deadlocks). A tracking server is probed
before it is used (`facebias.tracking.server`), so an unreachable one fails within seconds.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from facebias.config import TrackingConfig
from facebias.errors import TrackingError
from facebias.tracking.server import access_error, check_store

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_MESSAGE = "the tracking store is busy"
"""How a retried store request starts its log line (benchmarks/parallel_tracking_stores.py counts them)."""


@dataclass(frozen=True)
class TrackingStore:
    """Where runs are recorded, resolved once where a command starts (`tracking_store`) and passed down as it is.

    `uri` is MLflow's tracking URI, `experiment` the experiment's name, `artifact_location` where a new experiment
    keeps its artifacts (None: the store decides), `offline_after_s` how long a tracking server may stay away before
    a run continues offline. Credentials are not held here: MLflow reads MLFLOW_TRACKING_USERNAME / _PASSWORD /
    _TOKEN from the environment on each request, so they never reach a log line, a pickled job or a repr.
    """

    uri: str
    experiment: str
    artifact_location: str | None = None
    offline_after_s: float = 300.0


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go into `artifacts/` beside its database; a server decides for itself."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.parent / "artifacts").as_uri()


def tracking_store(config: TrackingConfig, base_dir: Path, uri: str | None = None,
                   read_by: str | None = None) -> TrackingStore | None:
    """The store runs go to, or None when tracking is disabled (and no `uri` given).

    The URI is, first to last: `uri` (a command's own `tracking_uri=`), MLFLOW_TRACKING_URI, `tracking.uri`, else
    SQLite at <base_dir>/<store_dir>/mlflow.db (the folder is created; TrackingError if it cannot be). `base_dir` is
    where the command was started (Hydra's original working directory for a run). A command that only reads names
    its store key in `read_by`: an SQLite store that does not exist is then a TrackingError, not created empty.
    """
    if uri is None and not config.enabled:
        return None
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or config.uri
    if not chosen:
        folder = (base_dir / config.store_dir).resolve()
        chosen = f"sqlite:///{folder / 'mlflow.db'}"
        if read_by is None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise TrackingError(f"cannot create the folder of the default MLflow store {folder}: "
                                    f"{error.strerror}; set tracking.store_dir=… to a folder you can write, or point "
                                    "tracking.uri at a store.") from error
    if read_by is not None and chosen.startswith("sqlite:///") and not Path(chosen[len("sqlite:///"):]).is_file():
        raise TrackingError(f"no MLflow store at {chosen}: run the command where the runs were recorded, or name "
                            f"their store with {read_by}=sqlite:///….db (or any other store URI).")
    return TrackingStore(chosen, config.experiment, default_artifact_location(chosen), config.offline_after_s)


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
            pause = min(0.1 * 2**attempt, 5.0)
            log.info("%s (%s): %s again in %.1f s", RETRY_MESSAGE, str(error).strip().splitlines()[0][:200], what,
                     pause)
            time.sleep(pause)
    raise TrackingError(f"could not {what}")


@functools.cache
def client_for(tracking_uri: str):
    """This process's MlflowClient on `tracking_uri` (created on first use; MLflow caches the store behind it)."""
    from mlflow.tracking import MlflowClient

    return with_retries(lambda: MlflowClient(tracking_uri), "open the tracking store")


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""What the MLflow UI (3.x) is told the experiment is: model training, so that it opens on the runs, not in GenAI
mode on traces."""


def get_or_create_experiment(client, name: str, artifact_location: str | None) -> str:
    """The id of experiment `name`, created (with `artifact_location`) if it does not exist; tagged as model
    development (`EXPERIMENT_KIND`) unless it says otherwise."""
    from mlflow.exceptions import MlflowException

    experiment = with_retries(lambda: client.get_experiment_by_name(name), "look up the experiment")
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"the MLflow experiment {name!r} is deleted: restore it in the MLflow UI or choose another name "
                "with tracking.experiment=…"
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            with_retries(lambda: client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                                           EXPERIMENT_KIND), "tag the experiment")
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:
        experiment = with_retries(lambda: client.get_experiment_by_name(name), "look up the experiment")
        if experiment is None:
            raise
        return experiment.experiment_id


def open_client(tracking_uri: str, experiment: str, artifact_location: str | None = None):
    """An MlflowClient on `tracking_uri` and the id of `experiment` (created if needed); one sentence on failure.

    A tracking server or a database is probed first, so that an unreachable one fails within seconds rather than
    after MLflow's minutes of retries; a server's credentials come from MLFLOW_TRACKING_USERNAME /
    MLFLOW_TRACKING_PASSWORD.
    """
    return first_use(tracking_uri, experiment,
                     lambda client: get_or_create_experiment(client, experiment, artifact_location))


def first_use(tracking_uri: str, experiment: str, use: Callable[[Any], T]) -> tuple[Any, T]:
    """This process's MlflowClient on `tracking_uri` and what `use(client)` returns, the store probed first
    (`check_store`); anything else that fails — MLflow's errors, the database driver's (a file that is not an MLflow
    store) — becomes the one sentence of `access_error`."""
    check_store(tracking_uri)
    try:
        client = client_for(tracking_uri)
        return client, use(client)
    except TrackingError:
        raise
    except Exception as error:
        raise access_error(tracking_uri, error, experiment) from error


def connect(store: TrackingStore):
    """An MlflowClient on `store` and the id of its experiment (created if needed).

    MLflow's process-wide current store is left alone: setting it would export MLFLOW_TRACKING_URI, which would
    then win over the `tracking.uri` of later runs in this process and of every child process.
    """
    return open_client(store.uri, store.experiment, store.artifact_location)
