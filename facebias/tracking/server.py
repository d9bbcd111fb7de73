"""Whether a tracking server can be reached, and the one sentence for a store that cannot be used.

A tracking server (http:// or https://) is asked for `<uri>/health` through MLflow's own HTTP client (so with its
credentials and TLS settings: MLFLOW_TRACKING_INSECURE_TLS, ..._SERVER_CERT_PATH, ..._CLIENT_CERT_PATH), without
retries and within 5 seconds. A database store (postgresql://, mysql://, mssql://) is connected to once, by its
driver, before MLflow opens it: MLflow retries a database it cannot connect to for about 100 seconds.
`unreachable_reason` tells a server that is away from one that refused a request; `fail_fast_http` turns off MLflow's
minutes of retries for a caller that retries by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from facebias.config import DATABASE_SCHEMES
from facebias.errors import TrackingError
from facebias.redaction import redacted

log = logging.getLogger(__name__)

HTTP_SCHEMES: tuple[str, ...] = ("http://", "https://")
PROBE_TIMEOUT_S = 5.0
UNREACHABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
"""HTTP statuses that mean "the server is not there right now" (a proxy or gateway answering for it)."""
UNAVAILABLE_REASON = "HTTP 503: the server or its database is unavailable"
"""What MLflow's server answers while its database cannot be reached (a restarted or stopped PostgreSQL)."""
RETRIED_503 = "too many 503 error responses"
"""How MLflow's HTTP client (urllib3) words a 503 it was told not to retry."""
FAIL_FAST_HTTP: dict[str, str] = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
"""MLflow's HTTP client retries a dead server for minutes; the recorder retries by itself, so it fails fast."""


def is_http(tracking_uri: str) -> bool:
    """Whether the store is a tracking server (http:// or https://)."""
    return tracking_uri.startswith(HTTP_SCHEMES)


def is_database(tracking_uri: str) -> bool:
    """Whether the store is a database server (`postgresql://…`, `mysql+pymysql://…`, `mssql://…`)."""
    return tracking_uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES


def check_database(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError, naming the URI and the driver's reason, unless the database accepts one connection."""
    import sqlalchemy

    timeouts = {"connect_timeout": int(timeout)} if not tracking_uri.startswith("mssql") else {}
    try:
        engine = sqlalchemy.create_engine(tracking_uri, poolclass=sqlalchemy.pool.NullPool, connect_args=timeouts)
        with engine.connect():
            pass
    except Exception as error:
        reason = redacted(short_error(getattr(error, "orig", None) or error))
        raise TrackingError(f"cannot connect to the database of the MLflow tracking store {redacted(tracking_uri)} "
                            f"({reason}): start it, check the user and database, or point tracking.uri at one that "
                            "runs.") from None
    engine.dispose()


def probe_server(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the tracking server answers `<uri>/health` within `timeout`, else why not (e.g. "connection refused").

    Any answer below 500 counts: credentials are checked by the first real request.
    """
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(get_default_host_creds(tracking_uri), "/health", "GET", max_retries=0,
                                timeout=timeout, raise_on_status=False)
    except Exception as error:
        tls = next((cause for cause in _causes(error) if isinstance(cause, ssl.SSLError)), None)
        return f"TLS: {short_error(tls)}" if tls else unreachable_reason(error) or short_error(error)
    status = response.status_code
    return f"HTTP {status}" if status in UNREACHABLE_STATUSES or status >= 500 else None


def check_server(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError, naming the URI, unless the tracking server answers `<uri>/health` within `timeout`."""
    reason = probe_server(tracking_uri, timeout)
    if reason is not None:
        raise TrackingError(f"cannot reach the MLflow tracking server at {redacted(tracking_uri)} ({reason}): start "
                            "it, or point tracking.uri (or MLFLOW_TRACKING_URI) at a running server.")


def check_store(tracking_uri: str) -> None:
    """Probe a tracking server (`check_server`) or a database (`check_database`) once, so that an unreachable one
    fails within seconds rather than after MLflow's minutes of retries; any other store is left to its client."""
    if is_http(tracking_uri):
        check_server(tracking_uri)
    elif is_database(tracking_uri):
        check_database(tracking_uri)


def wait_for_server(tracking_uri: str, limit_s: float, max_pause_s: float = 5.0) -> None:
    """Return once the tracking server answers (at once for a store that is not a server); while it is away, probe
    again with a backoff of up to `max_pause_s`, saying so, for at most `limit_s` seconds — then raise the
    TrackingError of `check_server`. For the steps of a sweep between its jobs, which must outlast an outage."""
    if not is_http(tracking_uri):
        return
    started = time.monotonic()
    pause = 0.5
    reason = probe_server(tracking_uri)
    if reason is not None:
        log.warning("the tracking server at %s is unreachable (%s): waiting up to %.0f s for it", tracking_uri, reason,
                    limit_s)
    while reason is not None:
        if time.monotonic() - started + pause > limit_s:
            check_server(tracking_uri)
            return
        time.sleep(pause)
        pause = min(2 * pause, max_pause_s)
        reason = probe_server(tracking_uri)
        if reason is None:
            log.warning("the tracking server at %s is back after %.0f s", tracking_uri, time.monotonic() - started)


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
    if _http_status(error) == 503 or any(RETRIED_503 in str(cause) for cause in causes):
        return UNAVAILABLE_REASON
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


def access_error(tracking_uri: str, error: Exception, experiment: str) -> TrackingError:
    """One sentence for a store that answered but refused: no login, wrong credentials, no permission, or other."""
    status, user = _http_status(error), os.environ.get("MLFLOW_TRACKING_USERNAME")
    tracking_uri = redacted(tracking_uri)
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
    return TrackingError(f"cannot use the MLflow tracking store {tracking_uri}: {redacted(short_error(error))}; "
                         "check that it is an MLflow store (an SQLite file MLflow wrote, a database, a server) or "
                         "point tracking.uri (or MLFLOW_TRACKING_URI) at one.")


@contextmanager
def fail_fast_http() -> Iterator[None]:
    """Apply FAIL_FAST_HTTP for the duration of one request, except where the user set those variables."""
    added = [name for name in FAIL_FAST_HTTP if name not in os.environ]
    os.environ.update({name: FAIL_FAST_HTTP[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
