"""The start of one run: everything that can fail without TensorFlow fails before it is imported.

`train` is what `python -m facebias.train` (and every job of a sweep) calls once Hydra has composed and validated
the config: it reaches the tracking store (an unreachable server, refused credentials or a deleted experiment are
one sentence within seconds), finds the run that `resume` names, locks the run's output folder, and only then
imports the run recipe (facebias.run.recipe), which loads TensorFlow and trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facebias.config import TrainConfig
from facebias.environment import environment_tags
from facebias.identity import FINGERPRINT_TAG, OUTPUT_DIR_TAG, PROCESS_TAG, config_fingerprint, run_tags
from facebias.liveness import lock_run
from facebias.run.plan import RunPlan
from facebias.run.resume import find_resume_target
from facebias.startup import loading_tensorflow
from facebias.tracking.store import TrackingStore, connect

if TYPE_CHECKING:
    from facebias.run.recipe import RunResult


def train(
    config: TrainConfig,
    *,
    resolved: dict[str, Any],
    output_dir: Path,
    store: TrackingStore | None,
    choices: Mapping[str, str | None],
    parent_run_id: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    on_run_open: Callable[[str], None] | None = None,
) -> RunResult:
    """Train and evaluate one composed run, recording everything in one MLflow run.

    `store` is where the run is recorded (None: tracking disabled). In a sweep, the run is a child of
    `parent_run_id` and carries `extra_tags` (job number, fingerprint).
    """
    if store is not None:
        connect(store)
    fingerprint = config_fingerprint(resolved)
    target = find_resume_target(config, fingerprint, store)
    if target is not None:
        output_dir = target.output_dir
        print(f"resuming run {target.run_id} from its checkpoint in {output_dir} (stage "
              f"{target.checkpoint.stage}, {target.checkpoint.epoch} epoch(s) done in it)")
    with target.lock if target is not None else lock_run(output_dir) as lock:
        tags = {**run_tags(config, choices), **environment_tags(), FINGERPRINT_TAG: fingerprint,
                OUTPUT_DIR_TAG: str(output_dir.resolve()), PROCESS_TAG: lock.holder.describe(), **(extra_tags or {})}
        with loading_tensorflow():
            from facebias.run.recipe import run_locked
        return run_locked(RunPlan(config, resolved, output_dir, store, tags, parent_run_id, on_run_open, target))
