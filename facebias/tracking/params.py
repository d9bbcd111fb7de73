"""A nested config as flat MLflow params: `{"seed": 3, "head": {"units": 8}}` → `{"seed": "3", "head.units": "8"}`.

Values longer than MLflow allows are left whole: the store truncates them to its limit (with a warning).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_params(resolved: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config to MLflow params; list items of `stages` become stage-qualified keys.

    `{"schedule": {"stages": [{"lr": 1e-4}]}}` → `{"schedule.stage1.lr": "0.0001"}`.
    """
    flat: dict[str, str] = {}
    for key, value in resolved.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, list) and key == "stages":
            for index, stage in enumerate(value, start=1):
                flat.update(flatten_params(stage, f"{prefix}stage{index}."))
        else:
            flat[name] = str(value)
    return flat
