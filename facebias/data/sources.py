"""The data seam: a `data` config → the common Dataset record, through the source facebias.options registers.

A prepared source (appa_real, kit_arrays) is read through its prepared cache (facebias.data.prepared); its folder is
checked first, without reading it (`check_source`).
"""

from __future__ import annotations

from typing import Any

from facebias.data.dataset import Dataset
from facebias.data.prepared import prepared_dataset
from facebias.options import DATA_SOURCES


def check_source(config: Any) -> None:
    """DataError, in one sentence, when the source's folder is missing or incomplete (its files are not read): a run
    checks it before it creates or opens its tracking store."""
    check = DATA_SOURCES.get(getattr(config, "name", None)).check_function()
    if check is not None:
        check(config)


def load_dataset(config: Any) -> Dataset:
    """Load the dataset a `data` config names (its `name` picks the source)."""
    source = DATA_SOURCES.get(getattr(config, "name", None))
    load = source.load_function()
    return prepared_dataset(config, load) if source.prepared else load(config)
