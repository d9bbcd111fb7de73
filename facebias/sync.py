"""`python -m facebias.sync FOLDER [--tracking-uri URI]`: upload a run that was recorded offline.

When the tracking server stays unreachable longer than `tracking.offline_after_s`, a run keeps going and writes
everything it recorded to <output_dir>/tracking_offline/. This command uploads that folder into a store, the run's
own server by default (`facebias.tracking.sync`); uploading twice is harmless.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebias.errors import FacebiasError
from facebias.run.identity import OFFLINE_ORIGIN_TAG
from facebias.tracking.server import short_error
from facebias.tracking.sync import sync_offline_run


def main(argv: list[str] | None = None) -> int:
    """Command line: sync one offline run folder; prints where it went, or one sentence on error (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m facebias.sync", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run's tracking_offline folder")
    parser.add_argument("--tracking-uri", help="the store to upload to (default: the one the run was meant for)")
    args = parser.parse_args(argv)
    try:
        result = sync_offline_run(args.folder, args.tracking_uri, OFFLINE_ORIGIN_TAG)
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
