"""The embedded synthetic dataset: deterministic, APPA-REAL-like stylised face crops rendered with numpy.

Every person gets a gender, ethnicity, expression and age group sampled independently from the marginals of
the starting kit's training split, a true age within the age group, and an apparent-age label
(true age plus rater noise). The image encodes the true age through face proportions (children: eyes lower
and larger, rounder face, larger forehead), wrinkles (forehead lines, crow's feet, under-eye and nasolabial
lines) deepening past an onset age, greying hair and, for men, a receding hairline. Skin tone follows
ethnicity, hair length and jaw shape follow gender, mouth curvature, open smile and brows follow expression;
pose, lighting, background, clothes and pixel noise are nuisances.

The bias mechanism: age cues are not equally visible in every group. Wrinkles darken the skin
multiplicatively, so the same relative depth is a smaller pixel contrast on darker skin (and sinks further
into the pixel noise); wrinkles and grey hair also start later on Asian and later still on Afro-American
faces. Smiling adds crow's feet and nasolabial folds that look like age lines, 'other' expressions raise or
knit the brows (forehead and frown lines) and distort the face, and a fringe (more often on women) hides the
forehead lines. Together with the imbalanced marginals (3 % Afro-American, 4 % 'other' expression, 4 % over
60), a model trained on this data is expected to be less accurate on the minority groups.
"""

from __future__ import annotations

import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from facebias.config import SYNTHETIC_IMAGE_SIZES, check_whole_number
from facebias.data.dataset import ATTRIBUTE_COLUMNS, SPLIT_NAMES, Dataset, Split
from facebias.data.synthesis.people import sample_apparent_ages, sample_attributes
from facebias.data.synthesis.render import render_faces
from facebias.errors import CacheNotWritten
from facebias.io import atomic_file, cache_root

if TYPE_CHECKING:
    from facebias.config import SyntheticDataConfig

GENERATOR_VERSION = 1
"""Bumped whenever sampling or rendering changes, so stale caches are not reused."""

DESCRIPTION = (
    "Synthetic APPA-REAL-like face crops (stylised, rendered with numpy). Attributes and age groups follow the "
    "starting kit's training marginals; the label is the true age plus rater noise. Age shows as face "
    "proportions, wrinkles, grey hair and a receding hairline. Built-in bias: wrinkles darken skin "
    "multiplicatively (less contrast on darker skin) and start later on Asian and Afro-American faces, smiles "
    "and 'other' expressions add age-like lines, fringes hide forehead lines. For testing the pipeline and "
    "studying bias mechanics only: no substitute for APPA-REAL."
)

def load_synthetic(
    n_train: int = 4065,
    n_valid: int = 1482,
    n_test: int = 1978,
    image_size: int = 64,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dataset:
    """The synthetic dataset, generated on first use and then loaded from the on-disk cache.

    Each split has its own sub-seed of `seed`, so changing one split's size leaves the others unchanged.
    `cache_dir=None` means `$FACEBIAS_CACHE/synthetic` (default `~/.cache/facebias/synthetic`).
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    for split_name, n in sizes.items():
        check_whole_number(n, f"data.n_{split_name}", 1)
    check_whole_number(image_size, "data.image_size", *SYNTHETIC_IMAGE_SIZES)
    check_whole_number(seed, "data.seed", 0)
    path = cache_path(cache_dir, n_train, n_valid, n_test, image_size, seed)
    if path.exists():
        cached = _read_cache(path, sizes, image_size)
        if cached is not None:
            if progress:
                print(f"loaded synthetic data from cache {path}", file=sys.stderr)
            return cached
    split_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(SPLIT_NAMES))]
    splits = {
        name: generate_split(sizes[name], image_size, rng, progress_label=name if progress else None)
        for name, rng in zip(SPLIT_NAMES, split_rngs, strict=True)
    }
    try:
        _write_cache(path, splits)
    except OSError as error:
        warnings.warn(CacheNotWritten(path, str(error)), stacklevel=2)
    else:
        if progress:
            print(f"saved synthetic data to cache {path}", file=sys.stderr)
    return _dataset(splits)


def from_config(config: SyntheticDataConfig) -> Dataset:
    """The dataset a `data=synthetic` config describes."""
    return load_synthetic(
        n_train=config.n_train,
        n_valid=config.n_valid,
        n_test=config.n_test,
        image_size=config.image_size,
        seed=config.seed,
        cache_dir=config.cache_dir,
    )


def generate_split(n: int, image_size: int, rng: np.random.Generator, progress_label: str | None = None) -> Split:
    """One split of `n` synthetic faces of `image_size` pixels; prints progress when `progress_label` is set."""
    check_whole_number(n, "n", 1)
    check_whole_number(image_size, "data.image_size", *SYNTHETIC_IMAGE_SIZES)
    attributes = sample_attributes(n, rng)
    ages = sample_apparent_ages(attributes["true_age"].to_numpy(), rng)
    images = render_faces(attributes, image_size, rng, progress_label)
    return Split.build(images, ages, attributes)


def cache_path(
    cache_dir: str | os.PathLike | None, n_train: int, n_valid: int, n_test: int, image_size: int, seed: int
) -> Path:
    """The cache file of one parameter set (all generator parameters and GENERATOR_VERSION are in its name)."""
    if cache_dir is None:
        cache_dir = cache_root("synthetic")
    name = f"synthetic_v{GENERATOR_VERSION}_seed{seed}_{image_size}px_{n_train}-{n_valid}-{n_test}.npz"
    return Path(cache_dir).expanduser() / name


# ---------------------------------------------------------------- cache


def _dataset(splits: dict[str, Split]) -> Dataset:
    return Dataset(name="synthetic", splits=splits, description=DESCRIPTION)


def _write_cache(path: Path, splits: dict[str, Split]) -> None:
    """Write all splits to one uncompressed .npz, atomically."""
    arrays: dict[str, Any] = {}  # Any: numpy's stubs would match a value of **arrays to savez's allow_pickle
    for name, split in splits.items():
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_ages"] = split.ages
        arrays[f"{name}_true_age"] = split.attributes["true_age"].to_numpy(dtype=np.float32)
        for column in ATTRIBUTE_COLUMNS:
            arrays[f"{name}_{column}"] = split.attributes[column].to_numpy().astype(str)
    with atomic_file(path) as stream:
        np.savez(stream, **arrays)


def _read_cache(path: Path, sizes: dict[str, int], image_size: int) -> Dataset | None:
    """The cached dataset, or None (with a warning) when the file is unreadable or does not fit the key."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {name: _split_from_cache(stored, name) for name in SPLIT_NAMES}
        for name, split in splits.items():
            expected = (sizes[name], image_size, image_size, 3)
            if split.images.shape != expected:
                raise ValueError(f"{name} images have shape {split.images.shape}, expected {expected}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"synthetic data cache {path} is unreadable ({error}); regenerating it", stacklevel=3)
        return None
    return _dataset(splits)


def _split_from_cache(stored: np.lib.npyio.NpzFile, name: str) -> Split:
    attributes = pd.DataFrame({column: stored[f"{name}_{column}"].astype(object) for column in ATTRIBUTE_COLUMNS})
    attributes["true_age"] = stored[f"{name}_true_age"]
    return Split.build(stored[f"{name}_images"], stored[f"{name}_ages"], attributes)

