"""The data seam: a `data` config → the common Dataset record. Each source registers one loader here.

Real sources (appa_real, kit_arrays) go through their prepared cache (facebias.data.prepare)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facebias.data.dataset import Dataset
from facebias.errors import ConfigError


def _load_synthetic(config: Any) -> Dataset:
    from facebias.data.synthetic import load_synthetic

    return load_synthetic(
        n_train=config.n_train,
        n_valid=config.n_valid,
        n_test=config.n_test,
        image_size=config.image_size,
        seed=config.seed,
        cache_dir=config.cache_dir,
    )


def _load_appa_real(config: Any) -> Dataset:
    from facebias.data.appa_real import load_appa_real
    from facebias.data.prepare import prepared_dataset

    return prepared_dataset(config, load_appa_real)


def _load_kit_arrays(config: Any) -> Dataset:
    from facebias.data.kit_arrays import load_kit_arrays
    from facebias.data.prepare import prepared_dataset

    return prepared_dataset(config, load_kit_arrays)


SOURCES: dict[str, Callable[[Any], Dataset]] = {
    "synthetic": _load_synthetic,
    "appa_real": _load_appa_real,
    "kit_arrays": _load_kit_arrays,
}


def load_dataset(config: Any) -> Dataset:
    """Load the dataset a `data` config names (its `name` picks the source)."""
    name = getattr(config, "name", None)
    if name not in SOURCES:
        raise ConfigError(f"data.name={name!r} is unknown; accepted: {', '.join(SOURCES)}.")
    return SOURCES[name](config)
