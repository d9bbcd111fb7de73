"""`python -m facebias.sync folder=<folder> [tracking_uri=<uri>]`: upload a run that was recorded offline.

When the tracking server stays unreachable longer than `tracking.offline_after_s`, a run keeps going and writes
everything it recorded to <output_dir>/tracking_offline/. This command uploads that folder into a store, the run's
own server by default (`facebias.tracking.sync`); uploading twice is harmless. Keys: conf/sync.yaml.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from facebias.cli import Command, run_command
from facebias.errors import ConfigError, FacebiasError
from facebias.identity import OFFLINE_ORIGIN_TAG
from facebias.redaction import redacted_text
from facebias.shutdown import as_process
from facebias.tracking.server import short_error
from facebias.tracking.sync import sync_offline_run

SYNC = Command(
    prog="python -m facebias.sync",
    config_name="sync",
    summary="Upload a run that was recorded offline (<run output>/tracking_offline/) into an MLflow store.",
    descriptions={
        "folder": "a run's tracking_offline folder",
        "tracking_uri": "the store to upload to (null: the one the run was meant for)",
    },
    flags={"--tracking-uri": "tracking_uri"},
    positional=("folder",),
)


def sync(cfg: DictConfig) -> int:
    """Upload one offline run folder; prints where it went, or one sentence on error (exit 1)."""
    if not cfg.folder:
        raise ConfigError("folder is not set: run `python -m facebias.sync folder=<run output>/tracking_offline`.")
    folder = Path(cfg.folder)
    try:
        result = sync_offline_run(folder, cfg.tracking_uri or None, OFFLINE_ORIGIN_TAG)
    except FacebiasError:
        raise
    except Exception as error:
        print(f"error: could not upload {folder}: {redacted_text(short_error(error))}", file=sys.stderr)
        return 1
    how = "created as" if result.created else "continued"
    print(f"synced {folder} to {result.tracking_uri}: {how} run {result.run_id}, status {result.status}, "
          f"{result.metric_values} metric values, {result.artifact_files} artifact files")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see `SYNC`; 0 when uploaded, 1 with one sentence on error, 2 for a bad key."""
    return run_command(SYNC, argv, sync)


cli = as_process(main)
"""The command's process: `main`, then the process ends (facebias.shutdown)."""

if __name__ == "__main__":
    cli()
