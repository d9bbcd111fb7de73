"""User-facing errors: each carries one sentence that names the thing at fault and what would be accepted."""

from __future__ import annotations

import traceback
from pathlib import Path


class FacebiasError(Exception):
    """Base of every error meant to be read by a person rather than debugged."""


class ConfigError(FacebiasError, ValueError):
    """A configuration value is invalid."""


class UnknownKeyError(ConfigError):
    """The command line added a key the schema does not know (`+foo=1`): a usage error, as a misspelt key is."""


class DataError(FacebiasError):
    """A data source is missing, malformed or inconsistent."""


class WeightsError(FacebiasError):
    """Pretrained weights are missing or do not fit the model."""


class TrackingError(FacebiasError):
    """The MLflow tracking store cannot be reached or used."""


class StorageError(FacebiasError):
    """A file the run needs cannot be written (disk full, no permission); the previous version is kept."""


class NonFiniteLossError(FacebiasError, RuntimeError):
    """The training loss became NaN or infinite (the message suggests a lower learning rate)."""


class ReportError(FacebiasError):
    """A sweep's runs cannot be turned into a results table."""


class CacheNotWritten(UserWarning):
    """A data cache that could not be written: a run goes on without it; `python -m facebias.data.prepare`, whose
    job the cache is, stops with a StorageError."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"could not write the data cache {path} ({reason}); continuing without it")
        self.path, self.reason = path, reason


def path_problem(path: Path, folder: bool) -> str:
    """How `path` fails to be the folder (`folder`) or the file that was asked for, for an error's sentence: "does
    not exist", "is a file, not a folder" or "is a folder, not a file"."""
    if not path.exists():
        return "does not exist"
    return "is a file, not a folder" if folder else "is a folder, not a file"


def error_text(error: BaseException) -> str:
    """What a run's or a sweep job's `error` records of `error`: a FacebiasError's sentence as it is, any other
    error with its type (`ValueError: …`), which says where to look."""
    if isinstance(error, FacebiasError):
        return str(error)
    return "".join(traceback.format_exception_only(type(error), error)).strip()
