"""Prepared caches of real data sources: validated once, then read back memory-mapped.

Loading a real source decodes thousands of JPEGs (or converts float32 arrays): done once. The first load
validates the source, and only a source that passed is written to a compact cache — per split uint8 images
(`.npy`, memory-mapped when read back), apparent ages and an attributes CSV — in
`<cache_dir or $FACEBIAS_CACHE/prepared>/<source>-<size>px-<key>/`. The key covers the source options and the
name, size and modification time of every source file, so a changed source is prepared anew. Later runs read
the cache (and say so) without touching the source's images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebias.data.card import dataset_card
from facebias.data.dataset import SPLIT_NAMES, Dataset, Split
from facebias.io import atomic_folder, cache_root

CACHE_FORMAT = 1
MANIFEST = "manifest.json"


def source_files(root: Path) -> list[Path]:
    """Every file under a source folder, in a stable order."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def source_key(config: Any) -> str:
    """A key for a source: its options and the name, size and mtime of every file of its folder(s)."""
    options = {k: v for k, v in asdict(config).items() if k != "cache_dir"}
    hasher = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **options}, sort_keys=True, default=str).encode())
    folders = {Path(config.root).expanduser().resolve()}
    if getattr(config, "attributes_dir", None):
        folders.add(Path(config.attributes_dir).expanduser().resolve())
    for folder in sorted(folders):
        for path in source_files(folder) if folder.is_dir() else []:
            stat = path.stat()
            hasher.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return hasher.hexdigest()[:16]


def cache_folder(config: Any) -> Path:
    """Where the prepared cache of a source config lives: in data.cache_dir, default $FACEBIAS_CACHE/prepared."""
    root = Path(config.cache_dir).expanduser() if config.cache_dir else cache_root("prepared")
    return root / f"{config.name}-{config.image_size}px-{source_key(config)}"


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 22), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def write_cache(dataset: Dataset, folder: Path) -> Path:
    """Write a validated dataset to `folder` atomically (a staging folder renamed at the end)."""
    with atomic_folder(folder) as staging:
        files = {}
        for name in SPLIT_NAMES:
            split = dataset.splits[name]
            np.save(staging / f"{name}_images.npy", np.ascontiguousarray(split.images))
            np.save(staging / f"{name}_ages.npy", split.ages.astype(np.float32))
            split.attributes.to_csv(staging / f"{name}_attributes.csv", index=False)
        for path in sorted(staging.iterdir()):
            files[path.name] = _file_digest(path)
        (staging / "card.md").write_text(dataset_card(dataset))
        manifest = {"format": CACHE_FORMAT, "name": dataset.name, "digest": dataset.digest(),
                    "description": dataset.description, "extras": dataset.extras, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder


def read_cache(folder: Path) -> Dataset:
    """The dataset of a prepared cache, images memory-mapped (read-only)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    splits = {}
    for name in SPLIT_NAMES:
        images = np.load(folder / f"{name}_images.npy", mmap_mode="r", allow_pickle=False)
        ages = np.load(folder / f"{name}_ages.npy", allow_pickle=False)
        attributes = pd.read_csv(folder / f"{name}_attributes.csv", keep_default_na=False,
                                 dtype={"gender": str, "ethnicity": str, "expression": str, "age_group": str})
        splits[name] = Split(images=images, ages=ages, attributes=attributes)
    extras = {**manifest.get("extras", {}), "digest": manifest["digest"], "prepared_cache": str(folder)}
    return Dataset(name=manifest["name"], splits=splits, description=manifest.get("description", ""), extras=extras)


def cache_is_complete(folder: Path) -> bool:
    """A cache folder is usable when its manifest exists and lists every file it needs."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return False
    manifest = json.loads(manifest_path.read_text())
    return manifest.get("format") == CACHE_FORMAT and all((folder / name).exists() for name in manifest["files"])


def prepared_dataset(config: Any, load_source: Callable[[Any], Dataset], log: Callable[[str], None] = print
                     ) -> Dataset:
    """Read the prepared cache of a source, preparing it first (validate, then write) when there is none."""
    folder = cache_folder(config)
    if cache_is_complete(folder):
        log(f"using the prepared cache of {config.name} at {folder}")
        return read_cache(folder)
    log(f"preparing {config.name} from {config.root} (validating, then caching at {folder})")
    dataset = load_source(config)
    write_cache(dataset, folder)
    log(f"prepared cache written: {folder}")
    return read_cache(folder)

