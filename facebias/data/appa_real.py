"""The official APPA-REAL release folder → the common Dataset record (facebias.data.dataset).

Layout (SPEC.md, Data): `<root>/{train,valid,test}/NNNNNN.jpg` (whole image) and `NNNNNN.jpg_face.jpg` (aligned face
crop); `<root>/gt_avg_{split}.csv` with `file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age`; and the
separately released attribute files `allcategories_{split}.csv` (in `attributes_dir`, default the root) with the
columns `file, gender, race, makeup, time, happiness`, read by header name in any order, extra columns ignored.

Decisions:
- The label is `apparent_age_avg`; `real_age`, `file`, `num_ratings`, `apparent_age_std` (and `makeup`, `time` when
  present) are kept as extra attribute columns. Ages outside 0..120 years, empty or non-numeric, are errors.
- Attribute rows are joined to images by file name, never by position. `file` and `file_name` are both reduced to the
  image id (folder, `_face.jpg` and `.jpg` removed), so `000123.jpg`, `000123.jpg_face.jpg` and `000123` all match.
- Attribute values are matched to the SPEC.md vocabularies ignoring case, spaces, `-` and `_` (`Slightly happy` →
  `slightlyhappy`, `Afro-American` → `afroamerican`); anything else is an error.
- Images are decoded with Pillow (EXIF orientation not applied: pixels as stored), converted to RGB and resized to
  `image_size` × `image_size` with Pillow's bilinear filter, whose support widens with the reduction factor, so
  shrinking averages like an area filter. The aspect ratio is not kept (the face crops are close to square).
  The release's images come in many resolutions; since each is resized, mixed sizes are expected and accepted.
- A truncated JPEG counts as unreadable: Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is held off while decoding.
  `on_bad_image: fail` stops listing every unreadable image; `skip` leaves them out and logs them (`facebias.data`).
- Nothing is written to disk; caching is the caller's business.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, ImageFile

from facebias.data.dataset import SPLIT_NAMES, Dataset, Split
from facebias.errors import ConfigError, DataError
from facebias.vocab import VOCABULARIES

if TYPE_CHECKING:
    from facebias.config import AppaRealDataConfig

logger = logging.getLogger("facebias.data")

GT_COLUMNS: tuple[str, ...] = ("file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age")
ATTRIBUTE_HEADERS: dict[str, str] = {"gender": "gender", "ethnicity": "race", "expression": "happiness"}
"""Our attribute column → its header in allcategories_{split}.csv."""
PASSED_THROUGH_HEADERS: tuple[str, ...] = ("makeup", "time")
"""Optional allcategories columns kept verbatim (stripped) as extra attribute columns."""
ON_BAD_IMAGE: tuple[str, ...] = ("fail", "skip")
MAX_AGE = 120.0
SHOWN = 10
"""How many offending names an error message lists before giving the count."""
MAX_DECODE_THREADS = 8

DESCRIPTION = (
    "APPA-REAL (official release): face images with the mean apparent age of ~38 raters as label, the real age, "
    "and the gender / ethnicity / expression attributes of the allcategories files."
)


def load_appa_real(config: AppaRealDataConfig) -> Dataset:
    """Load, validate and decode the release's three splits (DataError / ConfigError with one sentence on bad input)."""
    image_size = check_image_size(config.image_size)
    on_bad_image = _check_on_bad_image(config.on_bad_image)
    root = Path(config.root).expanduser()
    attributes_dir = Path(config.attributes_dir).expanduser() if config.attributes_dir else root
    _check_layout(root, attributes_dir)
    tables = {name: read_split_table(root, attributes_dir, name) for name in SPLIT_NAMES}
    paths = {name: [root / name / f"{file}{config.crop_suffix}" for file in tables[name]["file"]] for name in tables}
    _check_images_exist(root, paths, config.crop_suffix)
    decoded = {name: decode_images(paths[name], image_size, f"APPA-REAL {name}") for name in SPLIT_NAMES}
    bad = [(paths[name][index], reason) for name, (_, failed) in decoded.items() for index, reason in failed.items()]
    _handle_bad_images(bad, root, on_bad_image)
    splits = {name: _build_split(name, tables[name], *decoded[name]) for name in SPLIT_NAMES}
    return Dataset(name="appa_real", splits=splits, description=DESCRIPTION)


def read_split_table(root: Path, attributes_dir: Path, split: str) -> pd.DataFrame:
    """The split's gt_avg rows joined to their allcategories rows by file name, validated, in gt_avg order."""
    gt_path = root / f"gt_avg_{split}.csv"
    attributes_path = attributes_dir / f"allcategories_{split}.csv"
    gt = read_csv_table(gt_path, GT_COLUMNS)
    categories = read_csv_table(attributes_path, ("file", *ATTRIBUTE_HEADERS.values()))
    if gt.empty:
        raise DataError(f"{gt_path} lists no images: the {split} split would be empty.")
    labels = pd.DataFrame(
        {
            "key": _keys(gt["file_name"], gt_path, "file_name"),
            "file": gt["file_name"].str.strip().to_numpy(),
            "apparent_age": parse_ages(gt, "apparent_age_avg", gt_path),
            "real_age": parse_ages(gt, "real_age", gt_path),
            "num_ratings": pd.to_numeric(gt["num_ratings"].str.strip(), errors="coerce").to_numpy(),
            "apparent_age_std": pd.to_numeric(gt["apparent_age_std"].str.strip(), errors="coerce").to_numpy(),
        }
    )
    attributes = pd.DataFrame({"key": _keys(categories["file"], attributes_path, "file")})
    for column, header in ATTRIBUTE_HEADERS.items():
        attributes[column] = _vocabulary_column(categories, header, column, attributes_path)
    for header in PASSED_THROUGH_HEADERS:
        if header in categories.columns:
            attributes[header] = categories[header].str.strip().to_numpy()
    _check_join(labels["key"], attributes["key"], gt_path, attributes_path)
    return labels.merge(attributes, on="key", how="left", validate="one_to_one").drop(columns="key")


def read_csv_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """A CSV as strings, headers stripped and lower-cased, indexed by line number; DataError on a missing column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(header):
                    raise DataError(
                        f"{path} line {reader.line_num} has {len(row)} fields but the header has {len(header)}; "
                        "accepted: one field per header column."
                    )
                rows.append(row + [""] * (len(header) - len(row)))
                lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path} is not a readable UTF-8 CSV file ({one_line(error)}).") from error
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{path} repeats the column(s) {', '.join(repeated)} in its header; accepted: unique names.")
    missing = [column for column in required if column not in header]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)}; columns found: {', '.join(header) or 'none'}; "
            f"required: {', '.join(required)}."
        )
    return pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=str)


def parse_ages(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """The column as float32 years; DataError naming the first empty, non-numeric, negative or > 120 entry."""
    raw = table[column].str.strip()
    ages = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(ages) | (ages < 0) | (ages > MAX_AGE)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path} line {table.index[first]}: {column}={raw.iloc[first]!r} is not a valid age; accepted: a number "
            f"of years from 0 to {MAX_AGE:g} ({int(bad.sum())} such row(s), the first shown)."
        )
    return ages.astype(np.float32)


def canonical_attribute(value: object) -> str:
    """The vocabulary spelling of a raw attribute value: lower case, without spaces, '-' and '_'."""
    return re.sub(r"[\s_\-]+", "", str(value)).lower()


def match_vocabulary(values: Iterable[object], column: str) -> tuple[np.ndarray, np.ndarray]:
    """Canonical values of `column` (gender, ethnicity, expression) and a mask of those outside SPEC's vocabulary."""
    canonical = np.array([canonical_attribute(value) for value in values], dtype=object)
    unknown = ~np.isin(canonical, np.array(VOCABULARIES[column], dtype=object))
    return canonical, unknown


def accepted_values(column: str) -> str:
    """The accepted values of a vocabulary column, for error messages."""
    return f"{', '.join(VOCABULARIES[column])} (case-insensitive)"


def check_image_size(value: object) -> int:
    """`data.image_size` as an int >= 1, or ConfigError."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"data.image_size={value!r} is invalid: use a whole number of pixels >= 1 (e.g. 224).")
    return int(value)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 (H, W, 3) image resized to (size, size, 3) with Pillow's bilinear filter (area-like when shrinking)."""
    if image.shape[:2] == (size, size):
        return image
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def listing(items: Iterable[object], shown: int = SHOWN) -> str:
    """'a, b, c' — at most `shown` items, then the total count."""
    items = [str(item) for item in items]
    text = ", ".join(items[:shown])
    return text if len(items) <= shown else f"{text}, … ({len(items)} in all)"


def one_line(error: BaseException) -> str:
    """An exception's message on one line (for error sentences that must not break)."""
    return " ".join(str(error).split()) or type(error).__name__


def decode_images(paths: Sequence[Path], size: int, label: str) -> tuple[np.ndarray, dict[int, str]]:
    """Decode JPEGs into a (N, size, size, 3) uint8 RGB array (in a thread pool); also the failures, index → reason.

    A failed image leaves zeros in its slot. Progress goes to stderr every 10 %.
    """
    images = np.zeros((len(paths), size, size, 3), dtype=np.uint8)

    def decode_into(index: int) -> str | None:
        try:
            images[index] = decode_image(paths[index], size)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return one_line(error)
        return None

    failures: dict[int, str] = {}
    workers = max(1, min(MAX_DECODE_THREADS, os.cpu_count() or 1))
    with _truncated_images_rejected(), ThreadPoolExecutor(max_workers=workers) as pool:
        next_report = 0.1
        for index, reason in enumerate(pool.map(decode_into, range(len(paths)))):
            if reason is not None:
                failures[index] = reason
            done = index + 1
            if done / len(paths) >= next_report or done == len(paths):
                _report_progress(label, done, len(paths))
                next_report = np.floor(done / len(paths) * 10 + 1) / 10
    return images, failures


def decode_image(path: Path, size: int) -> np.ndarray:
    """One image file fully decoded (truncation raises OSError), as RGB uint8 resized to (size, size, 3)."""
    with Image.open(path) as image:
        image.load()
        rgb = image.convert("RGB")
    return resize_square(np.asarray(rgb, dtype=np.uint8), size)


def _check_on_bad_image(value: object) -> str:
    if value not in ON_BAD_IMAGE:
        raise ConfigError(f"data.on_bad_image={value!r} is unknown; accepted: {', '.join(ON_BAD_IMAGE)}.")
    return str(value)


def _handle_bad_images(bad: list[tuple[Path, str]], root: Path, on_bad_image: str) -> None:
    """Fail listing every undecodable image, or (skip) log them; `_build_split` then leaves them out."""
    if not bad:
        return
    if on_bad_image == "fail":
        raise DataError(
            f"{len(bad)} image(s) under {root} cannot be decoded (unreadable or truncated): "
            f"{listing(f'{_relative(path, root)} ({reason})' for path, reason in bad)}; replace them, "
            "or set data.on_bad_image=skip to leave them out."
        )
    names = ", ".join(_relative(path, root) for path, _ in bad)
    logger.warning("APPA-REAL: skipping %d unreadable image(s) (data.on_bad_image=skip): %s", len(bad), names)


def _check_layout(root: Path, attributes_dir: Path) -> None:
    if not root.is_dir():
        raise DataError(
            f"the APPA-REAL folder {root} does not exist; set data.root to the unpacked release (the folder holding "
            "train/, valid/, test/ and gt_avg_*.csv)."
        )
    if not attributes_dir.is_dir():
        raise DataError(
            f"the attributes folder {attributes_dir} does not exist; set data.attributes_dir to the folder holding "
            "allcategories_{train,valid,test}.csv, or null to use the release folder."
        )
    files = [root / f"gt_avg_{name}.csv" for name in SPLIT_NAMES]
    files += [attributes_dir / f"allcategories_{name}.csv" for name in SPLIT_NAMES]
    missing = [root / name for name in SPLIT_NAMES if not (root / name).is_dir()]
    missing += [path for path in files if not path.is_file()]
    if missing:
        raise DataError(
            f"the APPA-REAL data is incomplete, missing: {listing(missing)}; expected the split folders train/, "
            "valid/, test/ and gt_avg_{split}.csv in data.root, and allcategories_{split}.csv in data.attributes_dir "
            "(default: data.root)."
        )


def _keys(names: pd.Series, path: Path, column: str) -> np.ndarray:
    """Image ids of a file-name column; DataError on empty or duplicated names."""
    keys = names.map(_image_key)
    empty = keys == ""
    if empty.any():
        raise DataError(f"{path} line {keys.index[empty.argmax()]}: {column} is empty; accepted: an image file name.")
    duplicated = keys[keys.duplicated(keep=False)]
    if not duplicated.empty:
        repeats = (f"{names[line].strip()} (line {line})" for line in duplicated.index)
        raise DataError(f"{path} lists the same image more than once: {listing(repeats)}; accepted: one row per image.")
    return keys.to_numpy()


def _image_key(name: str) -> str:
    base = PurePosixPath(name.strip().replace("\\", "/")).name
    base = re.sub(r"_face\.jpg$", "", base, flags=re.IGNORECASE)
    return re.sub(r"\.jpg$", "", base, flags=re.IGNORECASE)


def _vocabulary_column(table: pd.DataFrame, header: str, column: str, path: Path) -> np.ndarray:
    raw = table[header]
    canonical, unknown = match_vocabulary(raw, column)
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{path} line {table.index[first]}: {header}={raw.iloc[first].strip()!r} is not a known {column}; "
            f"accepted: {accepted_values(column)} ({int(unknown.sum())} such row(s), the first shown)."
        )
    return canonical


def _check_join(image_keys: pd.Series, attribute_keys: pd.Series, gt_path: Path, attributes_path: Path) -> None:
    without_attributes = sorted(set(image_keys) - set(attribute_keys))
    if without_attributes:
        raise DataError(
            f"{len(without_attributes)} image(s) of {gt_path} have no row in {attributes_path}: "
            f"{listing(without_attributes)}; every image needs its gender, race and happiness."
        )
    without_image = sorted(set(attribute_keys) - set(image_keys))
    if without_image:
        raise DataError(
            f"{len(without_image)} row(s) of {attributes_path} match no image of {gt_path}: {listing(without_image)}; "
            "check that both files belong to the same split."
        )


def _check_images_exist(root: Path, paths: dict[str, list[Path]], crop_suffix: str) -> None:
    missing = [path for split_paths in paths.values() for path in split_paths if not path.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) listed in gt_avg_*.csv are missing under {root}: "
            f"{listing(_relative(path, root) for path in missing)}; check data.root and "
            f"data.crop_suffix={crop_suffix!r} ('_face.jpg' for the face crops, '' for whole images)."
        )


def _build_split(name: str, table: pd.DataFrame, images: np.ndarray, failures: dict[int, str]) -> Split:
    keep = np.ones(len(table), dtype=bool)
    keep[list(failures)] = False
    if not keep.any():
        raise DataError(
            f"the APPA-REAL {name} split is empty: all {len(table)} of its images were unreadable and skipped; "
            "replace them, or restore the release from its archive."
        )
    kept = table[keep]
    return Split.build(images[keep], kept["apparent_age"].to_numpy(), kept.drop(columns="apparent_age"))


@contextmanager
def _truncated_images_rejected() -> Iterator[None]:
    """Make Pillow raise on truncated files while decoding, whatever another library set globally."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _report_progress(label: str, done: int, total: int) -> None:
    ending = "\n" if done == total or not sys.stderr.isatty() else "\r"
    print(f"decoding {label} images: {done / total:4.0%} ({done}/{total})", end=ending, file=sys.stderr, flush=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
