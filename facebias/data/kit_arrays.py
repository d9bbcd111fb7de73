"""The course starting kit's numpy arrays → the common Dataset record (facebias.data.dataset).

Files in `root`: `data_{split}.npy` (N, H, W, 3) images, `labels_{split}.npy` (N,) apparent ages in
years, `meta_data_{split}.npy` (N, 3) strings gender, ethnicity, expression; splits train, valid, test.

Decisions:
- Arrays are loaded with `allow_pickle=False`. A file stored as Python objects (it would need pickle, which can run
  code) is refused unless `allow_object_arrays` is set; then it is unpickled and converted to strings / numbers.
- Images may be uint8 or float (the kit stored float32 0..255, 4× the memory). The data file is memory-mapped and
  converted in chunks of CHUNK_IMAGES images into a preallocated uint8 array, so a float file is never held twice.
  Values must lie in 0..255 (floats are rounded); a float file whose values never exceed 1 is refused as scaled.
  `channel_order: bgr` (the kit's, believed) is converted to RGB; `rgb` is kept. Images whose size differs from
  `image_size` are resized with Pillow's bilinear filter (area-like when shrinking), as for the APPA-REAL release.
- The kit withheld the test labels: `labels_test.npy` (and `meta_data_test.npy`) may be absent. Such a split is kept
  for prediction with ages NaN, age_group `unknown` (and gender / ethnicity / expression `unknown` when its meta file
  is absent too), and the Dataset says so in `extras["unlabeled_splits"]` (comma-separated names). It is built
  without `Split.build`, whose age-group rule would file a NaN age under `>=60`. Evaluation must call
  `require_labels` first. Train and valid always need labels and meta.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from facebias.data.dataset import ATTRIBUTE_COLUMNS, SPLIT_NAMES, Dataset, Split
from facebias.data.images import resize_square
from facebias.data.validation import (
    accepted_values,
    check_ages,
    check_image_size,
    listing,
    match_vocabulary,
    one_line,
)
from facebias.errors import DataError, path_problem
from facebias.options import CHANNEL_ORDERS

if TYPE_CHECKING:
    from facebias.config import KitArraysDataConfig

LABEL_OPTIONAL_SPLITS: tuple[str, ...] = ("test",)
"""Splits whose labels (and meta data) the kit may withhold."""
UNLABELED = "unknown"
"""age_group of an unlabeled split, and its attributes when its meta file is absent too."""
CHUNK_IMAGES = 256

DESCRIPTION = (
    "The course starting kit's arrays: APPA-REAL face crops (4,065 / 1,482 / 1,978 images), apparent ages in years "
    "and gender / ethnicity / expression; the kit withheld the test labels."
)


@dataclass(frozen=True)
class _Annotations:
    """A split's labels (None when withheld) and attribute frame."""

    ages: np.ndarray | None
    attributes: pd.DataFrame


def load_kit_arrays(config: KitArraysDataConfig) -> Dataset:
    """Load and validate the kit's three splits (DataError / ConfigError with one sentence on bad input)."""
    image_size = check_image_size(config.image_size)
    CHANNEL_ORDERS.get(config.channel_order)
    allow_objects = bool(config.allow_object_arrays)
    root = Path(config.root).expanduser()
    _check_files(root)
    annotations = {name: _read_annotations(root, name, allow_objects) for name in SPLIT_NAMES}
    splits = {}
    for name in SPLIT_NAMES:
        images = load_images(root / f"data_{name}.npy", image_size, config.channel_order, allow_objects)
        splits[name] = _build_split(images, annotations[name])
    unlabeled = [name for name in SPLIT_NAMES if annotations[name].ages is None]
    extras = {"unlabeled_splits": ",".join(unlabeled)} if unlabeled else {}
    return Dataset(name="kit_arrays", splits=splits, description=DESCRIPTION, extras=extras)


def require_labels(split_name: str, split: Split) -> None:
    """Refuse (DataError) to evaluate a split whose apparent-age labels are missing (NaN), e.g. the kit's test split."""
    missing = int(np.isnan(split.ages).sum())
    if missing:
        raise DataError(
            f"the {split_name} split has no apparent-age label for {missing} of its {len(split)} images (the starting "
            "kit withheld the test labels), so it cannot be evaluated; evaluate on valid, or use the official "
            "release (data=appa_real), whose test split is labelled."
        )


def _read_annotations(root: Path, split: str, allow_objects: bool) -> _Annotations:
    """A split's labels and attributes, checked against its data file's shape (which is only read, not loaded)."""
    data_path = root / f"data_{split}.npy"
    labels_path = root / f"labels_{split}.npy"
    meta_path = root / f"meta_data_{split}.npy"
    shape, _ = npy_header(data_path)
    _check_image_shape(shape, data_path)
    if shape[0] == 0:
        raise DataError(f"{data_path} holds no images: the {split} split would be empty.")
    if labels_path.is_file() and not meta_path.is_file():
        raise DataError(
            f"{labels_path} is present but {meta_path.name} is not; a labelled split needs its gender, ethnicity and "
            "expression to measure bias."
        )
    ages = load_labels(labels_path, allow_objects) if labels_path.is_file() else None
    attributes = load_meta(meta_path, allow_objects) if meta_path.is_file() else _unknown_attributes(shape[0])
    counts = {data_path.name: shape[0], meta_path.name: len(attributes)}
    if ages is not None:
        counts[labels_path.name] = len(ages)
    if len(set(counts.values())) > 1:
        described = ", ".join(f"{name} has {count}" for name, count in counts.items())
        raise DataError(f"the {split} split's files disagree in length: {described}; each needs one entry per image.")
    return _Annotations(ages, attributes)


def load_labels(path: Path, allow_objects: bool) -> np.ndarray:
    """Apparent ages in years, float32 (N,); DataError on a wrong shape or a NaN, negative or > 120 value."""
    labels = open_array(path, allow_objects, mmap=False)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{path} has shape {labels.shape}; expected (N,): one apparent age in years per image.")
    try:
        ages = labels.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path} holds {labels.dtype} values that are not numbers; expected ages in years.") from error
    check_ages(ages, lambda first: f"{path} index {first}: {ages[first]:g}", "apparent age", "value")
    if len(ages) and ages.max() <= 1.0:
        raise DataError(
            f"{path} looks normalised: no label exceeds 1.0; expected apparent ages in years (multiply by 100 labels "
            "that were divided by the normalisation factor)."
        )
    return ages.astype(np.float32)


def load_meta(path: Path, allow_objects: bool) -> pd.DataFrame:
    """The (N, 3) gender, ethnicity, expression strings as vocabulary columns; DataError on unknown values."""
    meta = open_array(path, allow_objects, mmap=False)
    if meta.ndim != 2 or meta.shape[1] != len(ATTRIBUTE_COLUMNS):
        raise DataError(f"{path} has shape {meta.shape}; expected (N, 3): gender, ethnicity, expression per image.")
    if meta.dtype.kind not in "USO":
        raise DataError(f"{path} holds {meta.dtype} values; expected strings (gender, ethnicity, expression).")
    text = _as_text(meta)
    columns = {}
    for index, column in enumerate(ATTRIBUTE_COLUMNS):
        canonical, unknown = match_vocabulary(text[:, index], column)
        if unknown.any():
            row = int(np.flatnonzero(unknown)[0])
            raise DataError(
                f"{path} row {row}, column {index} ({column}): {text[row, index]!r} is not a known {column}; "
                f"accepted: {accepted_values(column)} ({int(unknown.sum())} such row(s), the first shown)."
            )
        columns[column] = canonical
    return pd.DataFrame(columns)


def load_images(path: Path, image_size: int, channel_order: str, allow_objects: bool) -> np.ndarray:
    """(N, image_size, image_size, 3) uint8 RGB from a uint8 or float 0..255 file, converted chunk by chunk."""
    data = open_array(path, allow_objects, mmap=True)
    _check_image_shape(data.shape, path)
    if data.dtype.hasobject:
        data = _as_numbers(data, path)
    if data.dtype.kind not in "uif":
        raise DataError(f"{path} holds {data.dtype} values; accepted: uint8, or float pixel values from 0 to 255.")
    images = np.empty((len(data), image_size, image_size, 3), dtype=np.uint8)
    brightest = 0.0
    for start in range(0, len(data), CHUNK_IMAGES):
        chunk = np.asarray(data[start : start + CHUNK_IMAGES])
        if chunk.dtype != np.uint8:
            _check_pixel_range(chunk, path, start)
            brightest = max(brightest, float(chunk.max()))
            chunk = (np.rint(chunk) if chunk.dtype.kind == "f" else chunk).astype(np.uint8)
        if channel_order == "bgr":
            chunk = chunk[..., ::-1]
        if chunk.shape[1:3] != (image_size, image_size):
            chunk = np.stack([resize_square(image, image_size) for image in chunk])
        images[start : start + len(chunk)] = chunk
    if data.dtype.kind == "f" and brightest <= 1.0:
        raise DataError(
            f"{path} looks scaled to 0..1: no pixel value exceeds 1.0; accepted: uint8, or float pixel values from "
            "0 to 255."
        )
    return images


def open_array(path: Path, allow_objects: bool, mmap: bool) -> np.ndarray:
    """np.load without pickle (memory-mapped when `mmap`); an object array only with `allow_objects` (unpickled)."""
    _, dtype = npy_header(path)
    if dtype.hasobject and not allow_objects:
        raise DataError(
            f"{path} is stored as Python objects, and loading it would run pickle, which can execute arbitrary code; "
            "set data.allow_object_arrays=true only for a file you trust, or re-save it as a plain string or number "
            "array."
        )
    try:
        if dtype.hasobject:
            return np.load(path, allow_pickle=True)
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise DataError(f"{path} cannot be read as a numpy array ({one_line(error)}).") from error


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of a .npy file, read from its header without loading the data."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npy file ({one_line(error)}).") from error
    return shape, dtype


def check_folder(config: KitArraysDataConfig) -> None:
    """DataError unless data.root holds the kit's required .npy files (not read)."""
    _check_files(Path(config.root).expanduser())


def _check_files(root: Path) -> None:
    required = [f"data_{name}.npy" for name in SPLIT_NAMES]
    for kind in ("labels", "meta_data"):
        required += [f"{kind}_{name}.npy" for name in SPLIT_NAMES if name not in LABEL_OPTIONAL_SPLITS]
    optional = [f"{kind}_{name}.npy" for kind in ("labels", "meta_data") for name in LABEL_OPTIONAL_SPLITS]
    expected = f"expected {', '.join(required)} (optional: {', '.join(optional)})"
    if not root.is_dir():
        raise DataError(f"the starting-kit folder {root} {path_problem(root, folder=True)}; set data.root to the "
                        f"folder: {expected}.")
    missing = [name for name in required if not (root / name).is_file()]
    if missing:
        raise DataError(f"the starting-kit folder {root} lacks {listing(missing)}; {expected}.")


def _check_image_shape(shape: tuple[int, ...], path: Path) -> None:
    if len(shape) != 4 or shape[-1] != 3:
        raise DataError(f"{path} has shape {tuple(shape)}; expected (N, H, W, 3): N colour images of one size.")


def _check_pixel_range(chunk: np.ndarray, path: Path, start: int) -> None:
    """DataError naming the first image of the chunk with a pixel outside 0..255 (or NaN / infinite)."""
    low, high = chunk.min(), chunk.max()
    if np.isfinite(low) and np.isfinite(high) and low >= 0 and high <= 255:
        return
    bad = ~np.isfinite(chunk) | (chunk < 0) | (chunk > 255)
    index = int(np.flatnonzero(bad.reshape(len(chunk), -1).any(axis=1))[0])
    value = float(chunk[index][bad[index]][0])
    raise DataError(
        f"{path} image {start + index} has the pixel value {value:g}, outside 0..255; accepted: uint8, or float pixel "
        "values from 0 to 255."
    )


def _as_text(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind != "O":
        return array.astype(str)
    decoded = [value.decode() if isinstance(value, bytes) else str(value) for value in array.ravel()]
    return np.array(decoded, dtype=str).reshape(array.shape)


def _as_numbers(array: np.ndarray, path: Path) -> np.ndarray:
    try:
        return array.astype(np.float32)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path} holds Python objects that are not numbers; expected pixel values.") from error


def _unknown_attributes(n: int) -> pd.DataFrame:
    return pd.DataFrame({column: [UNLABELED] * n for column in ATTRIBUTE_COLUMNS})


def _build_split(images: np.ndarray, annotations: _Annotations) -> Split:
    if annotations.ages is not None:
        return Split.build(images, annotations.ages, annotations.attributes)
    attributes = annotations.attributes.reset_index(drop=True).assign(age_group=UNLABELED)
    return Split(images=images, ages=np.full(len(images), np.nan, dtype=np.float32), attributes=attributes)
