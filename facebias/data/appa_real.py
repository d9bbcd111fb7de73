"""The official APPA-REAL release folder → the common Dataset record (facebias.data.dataset).

Layout: `<root>/{train,valid,test}/NNNNNN.jpg` (whole image) and `NNNNNN.jpg_face.jpg` (aligned face
crop); `<root>/gt_avg_{split}.csv` with `file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age`; and the
separately released attribute files `allcategories_{split}.csv` (in `attributes_dir`, default the root) with the
columns `file, gender, race, makeup, time, happiness`, read by header name in any order, extra columns ignored.

Decisions:
- The label is `apparent_age_avg`; `real_age`, `file`, `num_ratings`, `apparent_age_std` (and `makeup`, `time` when
  present) are kept as extra attribute columns. Ages outside 0..120 years, empty or non-numeric, are errors.
- Attribute rows are joined to images by file name, never by position. `file` and `file_name` are both reduced to the
  image id (folder, `_face.jpg` and `.jpg` removed), so `000123.jpg`, `000123.jpg_face.jpg` and `000123` all match.
- Attribute values are matched to the vocabularies ignoring case, spaces, `-` and `_` (`Slightly happy` →
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

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from facebias.data.appa_tables import read_split_table
from facebias.data.dataset import SPLIT_NAMES, Dataset, Split
from facebias.data.images import decode_images
from facebias.data.validation import check_image_size, listing
from facebias.errors import DataError, path_problem
from facebias.options import ON_BAD_IMAGES

if TYPE_CHECKING:
    from facebias.config import AppaRealDataConfig

logger = logging.getLogger("facebias.data")

DESCRIPTION = (
    "APPA-REAL (official release): face images with the mean apparent age of ~38 raters as label, the real age, "
    "and the gender / ethnicity / expression attributes of the allcategories files."
)


def load_appa_real(config: AppaRealDataConfig) -> Dataset:
    """Load, validate and decode the release's three splits (DataError / ConfigError with one sentence on bad input)."""
    image_size = check_image_size(config.image_size)
    on_bad_image = ON_BAD_IMAGES.get(config.on_bad_image).name
    root, attributes_dir = _folders(config)
    _check_layout(root, attributes_dir)
    tables = {name: read_split_table(root, attributes_dir, name) for name in SPLIT_NAMES}
    paths = {name: [root / name / f"{file}{config.crop_suffix}" for file in tables[name]["file"]] for name in tables}
    _check_images_exist(root, paths, config.crop_suffix)
    decoded = {name: decode_images(paths[name], image_size, f"APPA-REAL {name}") for name in SPLIT_NAMES}
    bad = [(paths[name][index], reason) for name, (_, failed) in decoded.items() for index, reason in failed.items()]
    _handle_bad_images(bad, root, on_bad_image)
    splits = {name: _build_split(name, tables[name], *decoded[name]) for name in SPLIT_NAMES}
    return Dataset(name="appa_real", splits=splits, description=DESCRIPTION)


def check_folders(config: AppaRealDataConfig) -> None:
    """DataError unless the release folder and the attributes folder hold the split folders and CSV files (not read)."""
    _check_layout(*_folders(config))


def _folders(config: AppaRealDataConfig) -> tuple[Path, Path]:
    """The release folder and the folder of the attribute CSVs (default: the release folder)."""
    root = Path(config.root).expanduser()
    return root, Path(config.attributes_dir).expanduser() if config.attributes_dir else root


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
            f"the APPA-REAL folder {root} {path_problem(root, folder=True)}; set data.root to the unpacked release "
            "(the folder holding train/, valid/, test/ and gt_avg_*.csv)."
        )
    if not attributes_dir.is_dir():
        raise DataError(
            f"the attributes folder {attributes_dir} {path_problem(attributes_dir, folder=True)}; set "
            "data.attributes_dir to the folder holding allcategories_{train,valid,test}.csv, or null to use the "
            "release folder."
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


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
