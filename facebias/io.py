"""All-or-nothing writes and facebias' cache root: the one place that writes a file or folder atomically.

A writer fills a temporary file (or folder) beside its target, then renames it over the target with
`os.replace`, so a reader — or a process killed mid-write — sees the old content or the new, never half of it.
Files are synced before the rename. Every cache lives in a folder of `cache_root()`: `$FACEBIAS_CACHE`,
default `~/.cache/facebias`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

CACHE_ENVIRONMENT_VARIABLE = "FACEBIAS_CACHE"
DEFAULT_CACHE_ROOT = "~/.cache/facebias"
CACHE_KINDS: tuple[str, ...] = ("features", "prepared", "synthetic")
"""The caches under the root: frozen-stage backbone features, prepared real sources, generated synthetic data."""


def cache_root(kind: str | None = None) -> Path:
    """`$FACEBIAS_CACHE` (default `~/.cache/facebias`, `~` expanded), or its folder for one of CACHE_KINDS."""
    root = Path(os.environ.get(CACHE_ENVIRONMENT_VARIABLE, DEFAULT_CACHE_ROOT)).expanduser()
    if kind is None:
        return root
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; accepted: {', '.join(CACHE_KINDS)}")
    return root / kind


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary stream to a temporary file beside `path`, which replaces `path` once the block succeeds.

    The parent folder is created; on any error the temporary file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_file(path) as stream:
        stream.write(data)


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> None:
    """Write `value` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=1))


@contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """An empty staging folder beside `folder`, which replaces `folder` (and all it held) once the block succeeds.

    On any error the staging folder is removed and `folder` is left as it was.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        yield staging
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
