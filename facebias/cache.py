"""`python -m facebias.cache [action=list|clear] [kind=features|prepared|synthetic|all]`: inspect or empty caches.

All caches live under $FACEBIAS_CACHE (default ~/.cache/facebias): backbone features of frozen stages
(`features/`), prepared real-data sources (`prepared/`) and the generated synthetic data (`synthetic/`).
Every cache rebuilds itself on the next run that needs it. Keys: conf/cache.yaml.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from facebias.cli import Command, run_command
from facebias.errors import ConfigError, StorageError, path_problem
from facebias.io import CACHE_ENVIRONMENT_VARIABLE, CACHE_KINDS, DEFAULT_CACHE_ROOT, cache_root
from facebias.shutdown import as_process

ACTIONS: tuple[str, ...] = ("list", "clear")
KINDS: tuple[str, ...] = (*CACHE_KINDS, "all")

CACHE = Command(
    prog="python -m facebias.cache",
    config_name="cache",
    summary="List facebias' caches under $FACEBIAS_CACHE (default ~/.cache/facebias) with their sizes, or clear "
            "some of them; every cache rebuilds itself on the next run that needs it.",
    descriptions={"action": f"{' or '.join(ACTIONS)}", "kind": f"which cache: {', '.join(KINDS)}"},
    positional=("action", "kind"),
)


def folder_size(folder: Path) -> int:
    """Total bytes of the files under `folder` (0 when it does not exist)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def cache(cfg: DictConfig) -> int:
    """List the caches with their sizes, or clear some of them."""
    if cfg.action not in ACTIONS:
        raise ConfigError(f"action={cfg.action} is invalid; accepted: {', '.join(ACTIONS)}.")
    if cfg.kind not in KINDS:
        raise ConfigError(f"kind={cfg.kind} is invalid; accepted: {', '.join(KINDS)}.")
    kinds = CACHE_KINDS if cfg.kind == "all" else (cfg.kind,)
    root = cache_root()
    if root.exists() and not root.is_dir():
        raise StorageError(f"the cache root {root} ({CACHE_ENVIRONMENT_VARIABLE}) {path_problem(root, folder=True)}: "
                           f"point {CACHE_ENVIRONMENT_VARIABLE} at a folder, or unset it for {DEFAULT_CACHE_ROOT}.")
    for kind in kinds:
        folder = cache_root(kind)
        size = folder_size(folder)
        if cfg.action == "clear" and folder.exists():
            try:
                shutil.rmtree(folder)
            except OSError as error:
                raise StorageError(f"could not clear the {kind} cache {folder}: {error.strerror} ({error.filename}); "
                                   "clear it as the user who wrote it, or with the permission to.") from error
            print(f"cleared {kind} cache {folder} ({size / 1e6:.1f} MB)")
        else:
            print(f"{kind:<10} {folder} ({size / 1e6:.1f} MB)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see `CACHE`; 0, or 1 / 2 with one sentence for a bad value / key."""
    return run_command(CACHE, argv, cache)


cli = as_process(main)
"""The command's process: `main`, then the process ends (facebias.shutdown)."""

if __name__ == "__main__":
    cli()
