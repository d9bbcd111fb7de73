"""The APPA-REAL label tables: `gt_avg_{split}.csv` joined by file name to `allcategories_{split}.csv`, validated.

Both are read as strings by header name; ages must lie in 0..120 years and attribute values in the
vocabularies (ignoring case, spaces, `-` and `_`); every image needs exactly one attribute row and vice versa.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from facebias.data.validation import accepted_values, check_ages, listing, match_vocabulary, one_line
from facebias.errors import DataError

GT_COLUMNS: tuple[str, ...] = ("file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age")
ATTRIBUTE_HEADERS: dict[str, str] = {"gender": "gender", "ethnicity": "race", "expression": "happiness"}
"""Our attribute column → its header in allcategories_{split}.csv."""
PASSED_THROUGH_HEADERS: tuple[str, ...] = ("makeup", "time")
"""Optional allcategories columns kept verbatim (stripped) as extra attribute columns."""

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
    check_ages(ages, lambda first: f"{path} line {table.index[first]}: {column}={raw.iloc[first]!r}", "age", "row")
    return ages.astype(np.float32)


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
