"""Datasets: every source yields one common `Dataset` record (uint8 images, ages in years, attributes)."""

from facebias.data.dataset import Dataset, Split

__all__ = ["Dataset", "Split"]
