"""The dataset card: counts per split and attribute value, an age histogram and the weighting groups (pure)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from facebias.data.dataset import SPLIT_NAMES, Dataset
from facebias.data.groups import group_keys
from facebias.vocab import VOCABULARIES

AGE_BINS: tuple[int, ...] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 121)


def attribute_counts(dataset: Dataset) -> pd.DataFrame:
    """One row per (attribute, value) with the count in each split."""
    rows = []
    for attribute, values in VOCABULARIES.items():
        for value in values:
            row: dict[str, str | int] = {"attribute": attribute, "value": value}
            for name in SPLIT_NAMES:
                row[name] = int((dataset.splits[name].attributes[attribute] == value).sum())
            rows.append(row)
    return pd.DataFrame(rows)


def age_histogram(dataset: Dataset) -> pd.DataFrame:
    """Apparent ages per 10-year bin and split (unlabelled samples are left out)."""
    labels = [f"{low}-{high - 1}" for low, high in itertools.pairwise(AGE_BINS)]
    table = {}
    for name in SPLIT_NAMES:
        ages = dataset.splits[name].ages
        counts, _ = np.histogram(ages[~np.isnan(ages)], bins=AGE_BINS)
        table[name] = counts
    return pd.DataFrame(table, index=pd.Index(labels, name="apparent age"))


def non_empty_groups(dataset: Dataset) -> int:
    """Number of non-empty (gender, ethnicity, age group, expression) groups of the training split."""
    return int(group_keys(dataset.train.attributes).nunique())


def markdown_table(frame: pd.DataFrame) -> str:
    """A plain Markdown table of a DataFrame (its index is not shown: reset it first if it matters)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def dataset_card(dataset: Dataset) -> str:
    """A Markdown card describing the dataset."""
    sizes = ", ".join(f"{name} {len(dataset.splits[name]):,}" for name in SPLIT_NAMES)
    height, width = dataset.image_size
    lines = [
        f"# Dataset card: {dataset.name}",
        "",
        f"- images: {sizes} ({height}x{width} RGB, uint8)",
        f"- digest: {dataset.digest()}",
        f"- non-empty weighting groups in train: {non_empty_groups(dataset)} of 96",
    ]
    if dataset.description:
        lines.append(f"- {dataset.description}")
    lines += ["", "## Counts per attribute value", "", markdown_table(attribute_counts(dataset)), "",
              "## Apparent age", "", markdown_table(age_histogram(dataset).reset_index()), ""]
    return "\n".join(lines)
