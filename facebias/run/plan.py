"""What facebias.run.start hands the run recipe (facebias.run.recipe.run_locked) once the run can start: one record.

Kept apart from both so that the light start and the TensorFlow-loading recipe share it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebias.config import TrainConfig
from facebias.run.resume import ResumeTarget
from facebias.tracking.store import TrackingStore


@dataclass(frozen=True)
class RunPlan:
    """One run ready to train: its validated config and resolved (plain) config, its output folder (locked by this
    process), the store it records into (None: tracking disabled), its tags; in a sweep, its parent run and
    `on_run_open(run id)`, called as soon as the MLflow run exists; and the killed run it continues (`target`)."""

    config: TrainConfig
    resolved: dict[str, Any]
    output_dir: Path
    store: TrackingStore | None
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    on_run_open: Callable[[str], None] | None = None
    target: ResumeTarget | None = None
