"""Run identity: what names a run and tells runs apart — the config fingerprint, the run name, and every
`facebias.*` tag name (which config a run computed, where its files are, which sweep it belongs to).

`facebias.tracking` knows none of these names; whoever asks it for runs passes the tags to match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from facebias.config import TrainConfig
from facebias.redaction import redacted_config, redacted_text

TAG_PREFIX = "facebias."
"""Every facebias tag starts so; `facebias.<group>` holds the option chosen for each config group."""

FINGERPRINT_TAG = "facebias.config_fingerprint"
"""What a run computes: a hash of its resolved config less `resume` (`config_fingerprint`)."""
OUTPUT_DIR_TAG = "facebias.output_dir"
"""The run's output folder, where its checkpoints are: what `resume` continues from."""
PROCESS_TAG = "facebias.process"
"""The process running the run: host, pid and start time, as its lock file (facebias.liveness) says."""
KILLED_REASON_TAG = "facebias.killed_reason"
"""On a run that `resume` found dead (its lock free, its status still RUNNING) and marked KILLED: why."""
SWEEP_ROLE_TAG = "facebias.role"
"""`SWEEP_PARENT_ROLE` on the parent run of a sweep."""
SWEEP_PARENT_ROLE = "sweep"
"""The value of `SWEEP_ROLE_TAG` that marks a sweep's parent run."""
SWEEP_KEY_TAG = "facebias.sweep_key"
"""The sweep command (`sweep_key`): a rerun of the same command reopens the parent run with this key."""
RESUMED_TAG = "facebias.resumed"
"""`true` on a sweep's parent run that a rerun of its command reopened."""
FAILED_JOBS_TAG = "facebias.failed_jobs"
"""On a sweep's parent run: the jobs that failed, one sentence each (cleared when the sweep is reopened)."""
OFFLINE_ORIGIN_TAG = "facebias.offline_original_run_id"
"""On a run that `python -m facebias.sync` had to create: the id of the run that was recorded offline."""
SEED_TAG = "facebias.seed"
"""The run's `seed`."""
DATASET_DIGEST_TAG = "facebias.dataset_digest"
"""A digest of the data the run trained and evaluated on: runs with different digests are not comparable."""
DATA_TAG = "facebias.data"
"""The `data` option (a choice tag)."""
FEATURE_CACHE_TAG = "facebias.feature_cache"
"""Per stage, whether it trained on cached backbone features, and why not."""
REPLICAS_TAG = "facebias.replicas"
"""How many devices trained in parallel (trainer.distribute)."""
JOB_NUM_TAG = "facebias.job_num"
"""A sweep job's number (Hydra's hydra.job.num)."""
TRIAL_TAG = "facebias.trial"
"""On a job's run in a search: the number of the Optuna trial it is a seed of (its row in the results table)."""
SWEEP_COMMAND_TAG = "facebias.sweep_command"
"""On a sweep's parent run: the command line that started it."""
SWEEP_DIR_TAG = "facebias.sweep_dir"
"""On a sweep's parent run: its output folder."""
PARENT_RUN_TAG = "mlflow.parentRunId"
"""MLflow's tag that nests a child run (a sweep's job) under its parent."""
ERROR_TAG = "error"
"""On a FAILED or KILLED run (or a sweep parent): the one sentence that says why it ended."""
NOTE_TAG = "mlflow.note.content"
"""MLflow's run description, shown in its UI: a run's config `description`; a sweep parent's results table."""
PYTHON_VERSION_TAG = "facebias.version.python"
"""The version of Python the run computed with (facebias.environment, as the next five)."""
TENSORFLOW_VERSION_TAG = "facebias.version.tensorflow"
"""The version of TensorFlow."""
KERAS_VERSION_TAG = "facebias.version.keras"
"""The version of Keras."""
NUMPY_VERSION_TAG = "facebias.version.numpy"
"""The version of numpy."""
MLFLOW_VERSION_TAG = "facebias.version.mlflow"
"""The version of MLflow."""
CPU_THREADS_TAG = "facebias.cpu_threads"
"""How many threads TensorFlow ran each CPU operation on: a different count changes the numbers in the last bits."""
ENVIRONMENT_TAGS: tuple[str, ...] = (PYTHON_VERSION_TAG, TENSORFLOW_VERSION_TAG, KERAS_VERSION_TAG, NUMPY_VERSION_TAG,
                                     MLFLOW_VERSION_TAG, CPU_THREADS_TAG)
"""What a run computed with besides its config: runs that differ in one of these are not expected to give the same
numbers with the same config and seed."""


def choice_tag(group: str) -> str:
    """The tag holding the option chosen for config group `group`, e.g. `facebias.backbone`."""
    return f"{TAG_PREFIX}{group}"


def run_name(config: TrainConfig) -> str:
    """E.g. `resnet50-mlp-three_stage-group`, from the chosen options."""
    return f"{config.backbone.name}-{config.head.name}-{config.schedule.name}-{config.weighting.name}"


def run_tags(config: TrainConfig, choices: Mapping[str, str | None]) -> dict[str, str]:
    """One tag per config-group choice (hydra.runtime.choices; none for a group left unchosen, such as `experiment`
    in a run without `experiment=`), plus the seed and the description."""
    tags = {choice_tag(group): str(option) for group, option in choices.items()
            if not group.startswith("hydra") and option is not None}
    tags[SEED_TAG] = str(config.seed)
    if config.description:
        tags[NOTE_TAG] = config.description
    return tags


def config_fingerprint(resolved: Mapping[str, Any]) -> str:
    """Identifies what a run computes: its whole resolved config, less `resume` (how it is run, not what), with its
    credentials redacted (a tag must not be a hash to test guessed passwords against)."""
    relevant = redacted_config({key: value for key, value in resolved.items() if key != "resume"})
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:20]


def sweep_key(task_overrides: list[str], experiment: str) -> str:
    """Identifies a sweep command: the same overrides (in any order, credentials redacted) in the same MLflow
    experiment."""
    text = json.dumps({"overrides": sorted(redacted_text(item) for item in task_overrides), "experiment": experiment})
    return hashlib.sha256(text.encode()).hexdigest()[:20]
