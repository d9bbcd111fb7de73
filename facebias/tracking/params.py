"""A nested config as flat MLflow params: `{"seed": 3, "head": {"units": 8}}` → `{"seed": "3", "head.units": "8"}`.

Values longer than MLflow allows are left whole: the store truncates them to its limit (with a warning).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_params(resolved: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config to MLflow params named as a Hydra override names the value; a list of mappings (the
    stages of a schedule) is indexed from 0, as `schedule.stages.1.lr=…` overrides it.

    `{"schedule": {"stages": [{"lr": 1e-4}]}}` → `{"schedule.stages.0.lr": "0.0001"}`.
    """
    flat: dict[str, str] = {}
    for key, value in resolved.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            for index, item in enumerate(value):
                flat.update(flatten_params(item, f"{name}.{index}."))
        else:
            flat[name] = str(value)
    return flat
