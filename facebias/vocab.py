"""Attribute vocabularies (docs/metrics.md) and the age-group rule: the exact strings every data source must yield."""

from __future__ import annotations

import numpy as np

GENDERS: tuple[str, ...] = ("male", "female")
ETHNICITIES: tuple[str, ...] = ("asian", "afroamerican", "caucasian")
EXPRESSIONS: tuple[str, ...] = ("happy", "slightlyhappy", "neutral", "other")
AGE_GROUPS: tuple[str, ...] = ("<20", "20-39", "40-59", ">=60")
AGE_GROUP_EDGES: tuple[float, ...] = (20.0, 40.0, 60.0)

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "ethnicity": ETHNICITIES,
    "expression": EXPRESSIONS,
    "age_group": AGE_GROUPS,
}

AGE_NORMALISATION = 100.0
"""Targets are apparent age / 100; predictions x 100 are years."""


def age_groups(ages_years: np.ndarray) -> np.ndarray:
    """Map apparent ages in years to the age-group strings (<20, 20-39, 40-59, >=60)."""
    ages = np.asarray(ages_years, dtype=float)
    index = np.digitize(ages, AGE_GROUP_EDGES, right=False)
    return np.asarray(AGE_GROUPS, dtype=object)[index]
