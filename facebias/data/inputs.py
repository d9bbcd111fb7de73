"""Images to predict on, as `python -m facebias.predict` reads them: a folder of image files or one .npy array,
and the optional attributes CSV beside them (apparent ages and groups, for MAE and the bias scores)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facebias.data.dataset import ATTRIBUTE_COLUMNS
from facebias.data.images import decode_images, resize_square
from facebias.errors import DataError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LABEL_COLUMNS: tuple[str, ...] = ("apparent_age", *ATTRIBUTE_COLUMNS)
"""The columns an attributes CSV must have (and `file`, naming each image, for a folder)."""


def check_images_path(images: Path) -> None:
    """Refuse an `images` path that is neither a folder nor a .npy file (before any model is loaded)."""
    if not images.is_dir() and (images.suffix != ".npy" or not images.is_file()):
        raise DataError(f"images={images} is neither a folder of images nor a .npy file.")


def check_attributes_path(attributes: Path) -> None:
    """Refuse an `attributes` path that is not a file (before any model is loaded)."""
    if not attributes.is_file():
        raise DataError(f"attributes={attributes} is not a file: give the CSV of the images' attributes (columns "
                        f"{', '.join(LABEL_COLUMNS)}, and file naming each image of a folder).")


def read_images(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """uint8 RGB images of `size` (height, width) and their names: a folder's image files (by name) or the rows of
    a (N, H, W, 3) uint8 .npy array (`0`, `1`, …), resized where they differ."""
    check_images_path(path)
    height, width = size
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"images={path} holds no image file ({', '.join(IMAGE_SUFFIXES)}).")
        if height != width:
            raise DataError(f"images={path}: the model takes {height}x{width} images; give them as a .npy array.")
        images, failures = decode_images(files, height, "input")
        if failures:
            index, reason = next(iter(failures.items()))
            raise DataError(f"images={path}: {files[index].name} cannot be decoded ({reason}).")
        return images, [p.name for p in files]
    images = np.load(path, mmap_mode="r")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"images={path} holds a {images.dtype} array of shape {images.shape}; expected uint8 images "
                        "of shape (N, height, width, 3).")
    if images.shape[1:3] != (height, width):
        if height != width:
            raise DataError(f"images={path} holds {images.shape[1]}x{images.shape[2]} images; the model takes "
                            f"{height}x{width}.")
        images = np.stack([resize_square(image, height) for image in images])
    return np.asarray(images), [str(index) for index in range(len(images))]


def default_attributes(images: Path) -> Path | None:
    """The attributes CSV beside the images, if there is one: <folder>/attributes.csv, or <name>.csv for
    <name>.npy."""
    candidate = images / "attributes.csv" if images.is_dir() else images.with_suffix(".csv")
    return candidate if candidate.is_file() else None


def read_attributes(path: Path, names: list[str], from_folder: bool,
                    needed: Sequence[str] = LABEL_COLUMNS) -> pd.DataFrame:
    """The attributes CSV in image order (rows matched by `file` for a folder, in row order for an array): the
    `needed` columns, and those of LABEL_COLUMNS it also has."""
    check_attributes_path(path)
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError) as error:  # pandas' parser errors and a file that is not text are ValueErrors
        raise DataError(f"attributes={path} cannot be read as a CSV file ({str(error).splitlines()[0]}).") from error
    required = [*needed, "file"] if from_folder else list(needed)
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DataError(f"attributes={path} lacks the column(s) {', '.join(missing)}; expected "
                        f"{', '.join(required)}.")
    if from_folder:
        table = table.set_index("file")
        unknown = [name for name in names if name not in table.index]
        if unknown:
            raise DataError(f"attributes={path} has no row for image {unknown[0]} (of {len(unknown)} missing).")
        table = table.loc[names].reset_index(drop=True)
    elif len(table) != len(names):
        raise DataError(f"attributes={path} has {len(table)} rows for {len(names)} images.")
    return table[[column for column in LABEL_COLUMNS if column in table.columns]]
