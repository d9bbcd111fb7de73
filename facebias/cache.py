"""`python -m facebias.cache [list|clear] [features|prepared|synthetic|all]`: inspect or empty facebias' caches.

All caches live under $FACEBIAS_CACHE (default ~/.cache/facebias): backbone features of frozen stages
(`features/`), prepared real-data sources (`prepared/`) and the generated synthetic data (`synthetic/`).
Every cache rebuilds itself on the next run that needs it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from facebias.io import CACHE_KINDS, cache_root


def folder_size(folder: Path) -> int:
    """Total bytes of the files under `folder` (0 when it does not exist)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def main(argv: list[str] | None = None) -> int:
    """List the caches with their sizes, or clear some of them."""
    parser = argparse.ArgumentParser(prog="python -m facebias.cache", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("list", "clear"))
    parser.add_argument("kind", nargs="?", default="all", choices=(*CACHE_KINDS, "all"))
    args = parser.parse_args(argv)
    kinds = CACHE_KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        folder = cache_root(kind)
        size = folder_size(folder)
        if args.action == "clear" and folder.exists():
            shutil.rmtree(folder)
            print(f"cleared {kind} cache {folder} ({size / 1e6:.1f} MB)")
        else:
            print(f"{kind:<10} {folder} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
