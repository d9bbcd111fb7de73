"""Value checks shared by the real data sources (ages, vocabularies, image size) and how their errors list offenders."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np

from facebias.config import check_whole_number
from facebias.errors import DataError
from facebias.vocab import VOCABULARIES

MAX_AGE = 120.0
"""The largest apparent age (years) a data source may hold."""
SHOWN = 10
"""How many offending names an error message lists before giving the count."""


def canonical_attribute(value: object) -> str:
    """The vocabulary spelling of a raw attribute value: lower case, without spaces, '-' and '_'."""
    return re.sub(r"[\s_\-]+", "", str(value)).lower()


def match_vocabulary(values: Iterable[object], column: str) -> tuple[np.ndarray, np.ndarray]:
    """Canonical values of `column` (gender, ethnicity, expression) and a mask of those outside the vocabulary."""
    canonical = np.array([canonical_attribute(value) for value in values], dtype=object)
    unknown = ~np.isin(canonical, np.array(VOCABULARIES[column], dtype=object))
    return canonical, unknown


def check_ages(ages: np.ndarray, where: Callable[[int], str], what: str, unit: str) -> None:
    """DataError naming the first age that is missing, not finite or outside 0..MAX_AGE (`where(position)` says where
    it is and what it reads, e.g. "labels.npy index 3: -1"), how many there are (`unit`s), and what is accepted."""
    bad = ~np.isfinite(ages) | (ages < 0) | (ages > MAX_AGE)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(first)} is not a valid {what}; accepted: a number of years from 0 to {MAX_AGE:g} "
                        f"({int(bad.sum())} such {unit}(s), the first shown).")


def accepted_values(column: str) -> str:
    """The accepted values of a vocabulary column, for error messages."""
    return f"{', '.join(VOCABULARIES[column])} (case-insensitive)"


def check_image_size(value: object) -> int:
    """`data.image_size` of a real source as an int >= 1, or ConfigError."""
    return check_whole_number(value, "data.image_size", 1)


def listing(items: Iterable[object], shown: int = SHOWN) -> str:
    """'a, b, c' — at most `shown` items, then the total count."""
    texts = [str(item) for item in items]
    text = ", ".join(texts[:shown])
    return text if len(texts) <= shown else f"{text}, … ({len(texts)} in all)"


def one_line(error: BaseException) -> str:
    """An exception's message on one line (for error sentences that must not break)."""
    return " ".join(str(error).split()) or type(error).__name__
