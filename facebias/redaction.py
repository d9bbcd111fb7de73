"""Secrets kept out of what facebias records and prints: the one home of redaction.

A credential a user writes into a URI — the password of its user part (`postgresql://alice:PW@host/db`) or a token
in its query string (`?token=…`, `&password=…`, `&sig=…`) — becomes `***` in whatever facebias writes: MLflow params,
tags and artifacts, the files of its output folders, log lines, the summary and errors. Pure functions over a URI,
free text (a log line, a command line, a YAML file's text) and a nested config; `redacting_process_output` applies
them to every log record of the process and to the traceback of an uncaught error. The connection itself always uses
the real URI.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Mapping
from typing import Any

MASK = "***"

_USER_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*\\?://[^\s/?#@:'\"`<>\\]*\\?:)(?P<secret>[^\s/?#'\"`<>]*)@")
"""`scheme://user:` then the password up to the last `@` of the authority (as urllib splits it); also as a Hydra
sweep escapes it in a job's overrides (`scheme\\://user\\:password@`)."""
_SECRET_NAME = r"[\w.\-]*(?:password|passwd|secret|token|signature|credential|api_?key)[\w.\-]*|pwd|pass|key|sig|auth"
_QUERY_SECRET = re.compile(rf"(?P<head>[?&;](?:{_SECRET_NAME})\\?=)(?P<secret>(?:\\.|[^&#;\s'\"`<>\\])+)",
                           re.IGNORECASE)
"""A query parameter whose name says it is a secret (`?token=…`, `&password=…`, `&X-Amz-Signature=…`, `&sig=…`)."""
_SECRET_KEY = re.compile(r"password|passwd|secret|token|api_?key|credential", re.IGNORECASE)
"""A config key whose value is a secret as a whole (`data.password`, `+weights.api_key`)."""


def _masked(match: re.Match[str]) -> str:
    return match["head"] + (MASK if match["secret"] else "") + match.group(0)[match.end("secret") - match.start():]


def redacted_text(text: str) -> str:
    """`text` with every URI credential in it replaced by `***`; anything else is left as it is.

    `postgresql+psycopg2://leak:S3cret@127.0.0.1:5432/db` → `postgresql+psycopg2://leak:***@127.0.0.1:5432/db`,
    `https://host/x?token=abc&n=1` → `https://host/x?token=***&n=1`; `postgresql://alice@host/db` (no password) and
    `sqlite:////tmp/a:b@c/mlflow.db` (no user part) stay the same. Applying it twice changes nothing more.
    """
    if "://" not in text and "=" not in text:
        return text
    return _QUERY_SECRET.sub(_masked, _USER_PASSWORD.sub(_masked, text))


def redacted(url: str) -> str:
    """A URI without its credentials: postgresql://optuna:***@host/db, http://user:***@host:5000/?token=***."""
    return redacted_text(url)


def carries_secret(text: str) -> bool:
    """Whether `text` holds a credential that `redacted_text` would hide."""
    return redacted_text(text) != text


def redacted_config(value: Any) -> Any:
    """A nested config (mappings, lists, scalars) with every string redacted (`redacted_text`), and the value of a
    key named like a secret (`password`, `token`, `api_key`, …) replaced by `***` whole; a new object."""
    if isinstance(value, Mapping):
        return {key: MASK if isinstance(item, str) and item and _SECRET_KEY.search(str(key)) else redacted_config(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted_config(item) for item in value]
    if isinstance(value, str):
        return redacted_text(value)
    return value


def secret_keys(value: Any, prefix: str = "") -> list[str]:
    """The dotted keys of a nested config whose values `redacted_config` changes (`tracking.uri`, …)."""
    if isinstance(value, Mapping):
        return [key for name, item in value.items() for key in secret_keys(item, f"{prefix}{name}.")
                ] + [f"{prefix}{name}" for name, item in value.items()
                     if isinstance(item, str) and item and _SECRET_KEY.search(str(name))]
    if isinstance(value, list | tuple):
        return [key for index, item in enumerate(value) for key in secret_keys(item, f"{prefix}{index}.")]
    return [prefix.rstrip(".")] if isinstance(value, str) and carries_secret(value) else []


def redacting_process_output() -> None:
    """Make every log record of this process carry its message and traceback redacted (`redacted_text`), and the
    traceback of an uncaught error too.

    The log-record factory of the process holds whatever handlers Hydra, a launcher or a library configures later;
    `sys.excepthook` prints an uncaught error. Installing them again changes nothing.
    """
    if not getattr(sys.excepthook, "redacts", False):
        sys.excepthook = _print_redacted
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        entry = factory(*args, **kwargs)
        try:
            message = entry.getMessage()
        except Exception:  # a malformed call: let the handler report it as logging does
            return entry
        clean = redacted_text(message)
        if clean != message:
            entry.msg, entry.args = clean, ()
        if entry.exc_info and entry.exc_info[0] is not None:
            entry.exc_text = redacted_text(logging.Formatter().formatException(entry.exc_info))
        return entry

    record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)


def _print_redacted(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    """`sys.excepthook`: the uncaught error's traceback, as Python prints it, redacted."""
    sys.stderr.write(redacted_text("".join(traceback.format_exception(kind, error, trace))))


_print_redacted.redacts = True  # type: ignore[attr-defined]
