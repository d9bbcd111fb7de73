"""The data seam: a `data` config → the common Dataset record, through the source facebias.options registers.

A prepared source (appa_real, kit_arrays) is read through its prepared cache (facebias.data.prepared).
"""

from __future__ import annotations

from typing import Any

from facebias.data.dataset import Dataset
from facebias.data.prepared import prepared_dataset
from facebias.options import DATA_SOURCES


def load_dataset(config: Any) -> Dataset:
    """Load the dataset a `data` config names (its `name` picks the source)."""
    source = DATA_SOURCES.get(getattr(config, "name", None))
    load = source.load_function()
    return prepared_dataset(config, load) if source.prepared else load(config)
