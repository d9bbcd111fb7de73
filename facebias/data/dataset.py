"""The one record every data source yields: three splits of uint8 images, apparent ages and attributes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from facebias.vocab import VOCABULARIES, age_groups

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")
ATTRIBUTE_COLUMNS: tuple[str, ...] = ("gender", "ethnicity", "expression")


@dataclass(frozen=True)
class Split:
    """One split: images (N, H, W, 3) uint8 RGB, apparent ages (N,) float32 in years, attributes frame.

    `attributes` has the columns gender, ethnicity, expression (the vocabularies of docs/metrics.md) and age_group
    (derived from the apparent age); extra columns (e.g. real_age, file) are allowed.
    """

    images: np.ndarray
    ages: np.ndarray
    attributes: pd.DataFrame

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"images must be a uint8 array of shape (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        n = len(self.images)
        if len(self.ages) != n or len(self.attributes) != n:
            raise ValueError(
                f"split has {n} images but {len(self.ages)} ages and {len(self.attributes)} attribute rows"
            )
        missing = [c for c in ATTRIBUTE_COLUMNS if c not in self.attributes.columns]
        if missing:
            raise ValueError(f"attributes lack the column(s) {missing}; expected {list(ATTRIBUTE_COLUMNS)}")

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def build(cls, images: np.ndarray, ages: np.ndarray, attributes: pd.DataFrame) -> Split:
        """Make a split, adding the age_group column from the apparent ages and checking the vocabularies."""
        ages = np.asarray(ages, dtype=np.float32)
        frame = attributes.reset_index(drop=True).copy()
        frame["age_group"] = age_groups(ages)
        for column, allowed in VOCABULARIES.items():
            unknown = sorted(set(frame[column].unique()) - set(allowed))
            if unknown:
                raise ValueError(f"unknown {column} value(s) {unknown}; accepted: {list(allowed)}")
        return cls(images=images, ages=ages, attributes=frame)


@dataclass(frozen=True)
class Dataset:
    """A named dataset with train/valid/test splits and a digest identifying its content."""

    name: str
    splits: dict[str, Split]
    description: str = ""
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def valid(self) -> Split:
        return self.splits["valid"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    @property
    def image_size(self) -> tuple[int, int]:
        height, width = self.train.images.shape[1:3]
        return int(height), int(width)

    def digest(self) -> str:
        """A short content digest (images, ages, attributes of every split); a prepared cache stores it."""
        if "digest" in self.extras:
            return self.extras["digest"]
        return self._content_digest

    @cached_property
    def _content_digest(self) -> str:
        hasher = hashlib.sha256()
        for name in SPLIT_NAMES:
            split = self.splits[name]
            hasher.update(name.encode())
            hasher.update(np.ascontiguousarray(split.images).data.cast("B"))
            hasher.update(np.ascontiguousarray(split.ages).data.cast("B"))
            hasher.update(split.attributes[list(ATTRIBUTE_COLUMNS)].to_csv(index=False).encode())
        return hasher.hexdigest()[:16]
