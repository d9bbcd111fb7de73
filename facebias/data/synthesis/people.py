"""Who is drawn: attributes sampled from the starting kit's training marginals, true and apparent ages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facebias.data.dataset import ATTRIBUTE_COLUMNS

MARGINAL_COUNTS: dict[str, dict[str, int]] = {
    "age_group": {"<20": 796, "20-39": 2389, "40-59": 732, ">=60": 148},
    "gender": {"male": 2068, "female": 1997},
    "ethnicity": {"caucasian": 3522, "asian": 424, "afroamerican": 119},
    "expression": {"neutral": 1404, "slightlyhappy": 1784, "happy": 712, "other": 165},
}
"""Training-split counts of the APPA-REAL starting kit: the proportions every split is sampled from."""

TRUE_AGE_SHAPES: dict[str, tuple[float, float, float, float]] = {
    "<20": (3.0, 19.99, 1.5, 1.2),
    "20-39": (20.0, 39.99, 1.3, 1.7),
    "40-59": (40.0, 59.99, 1.1, 1.4),
    ">=60": (60.0, 90.0, 1.1, 2.2),
}
"""Per age group: (lowest, highest, beta a, beta b) of the true age within the group."""


def sample_attributes(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Gender, ethnicity, expression (independent draws from MARGINAL_COUNTS) and a true age per person."""
    drawn = {column: _draw_categories(MARGINAL_COUNTS[column], n, rng) for column in MARGINAL_COUNTS}
    true_age = _sample_true_ages(drawn.pop("age_group"), rng)
    frame = pd.DataFrame({column: drawn[column] for column in ATTRIBUTE_COLUMNS})
    frame["true_age"] = true_age.astype(np.float32)
    return frame


def sample_apparent_ages(true_ages: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apparent-age labels: true age plus rater noise (sd 1.5 years + 3 % of the age), clipped to [1, 100]."""
    true_ages = np.asarray(true_ages, dtype=float)
    noise = rng.normal(0.0, 1.5 + 0.03 * true_ages)
    return np.clip(true_ages + noise, 1.0, 100.0).astype(np.float32)


def _draw_categories(counts: dict[str, int], n: int, rng: np.random.Generator) -> np.ndarray:
    values = np.array(list(counts), dtype=object)
    weights = np.array(list(counts.values()), dtype=float)
    return rng.choice(values, size=n, p=weights / weights.sum())


def _sample_true_ages(age_groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ages = np.empty(len(age_groups))
    for group, (low, high, shape_a, shape_b) in TRUE_AGE_SHAPES.items():
        members = age_groups == group
        ages[members] = low + (high - low) * rng.beta(shape_a, shape_b, size=int(members.sum()))
    return ages

