"""Resume: find the killed run that `resume=auto|<run id>` continues, and put its logged curves back.

A run leaves a checkpoint at every epoch end (facebias.training.checkpoint) in its output folder, whose path is the
run's `facebias.output_dir` tag; `resume=auto` looks for the newest unfinished run with the same config
fingerprint that has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facebias.config import TrainConfig
from facebias.errors import ConfigError
from facebias.identity import FINGERPRINT_TAG, OUTPUT_DIR_TAG
from facebias.liveness import Holder, RunLock, RunStillRunningError, claim_dead_run, still_running
from facebias.tracking.queries import logged_history, logged_metric_keys, run_state, unfinished_runs
from facebias.tracking.recorder import Recorder
from facebias.tracking.store import TrackingStore
from facebias.training.checkpoint import Checkpoint, checkpoint_path, load_checkpoint
from facebias.training.history import CURVE_KEYS, CurveHistory


@dataclass(frozen=True)
class ResumeTarget:
    """A killed run to continue: its MLflow run id, its output folder, its last checkpoint, and its lock (held)."""

    run_id: str
    output_dir: Path
    checkpoint: Checkpoint
    lock: RunLock


def find_resume_target(config: TrainConfig, fingerprint: str, store: TrackingStore | None) -> ResumeTarget | None:
    """The run `config.resume` names (auto: the newest unfinished run of this config with a checkpoint), or None.

    Unfinished runs whose process died are marked KILLED on the way; a run a live process holds is never resumed.
    """
    if config.resume is None:
        return None
    if store is None:
        raise ConfigError(f"resume={config.resume} needs MLflow tracking: drop tracking=none, or drop resume.")
    if config.resume == "auto":
        return _find_auto(fingerprint, store)
    state = run_state(store, config.resume)
    if state is None:
        raise ConfigError(f"resume={config.resume}: the MLflow experiment {store.experiment!r} has no "
                          "such run; give the id of a killed run, or resume=auto.")
    status, tags = state
    if tags.get(FINGERPRINT_TAG) != fingerprint:
        raise ConfigError(f"resume={config.resume}: that run was started with another configuration; rerun its "
                          "own command with resume=….")
    folder = tags.get(OUTPUT_DIR_TAG)
    if not folder or not Path(folder).is_dir():
        raise ConfigError(f"resume={config.resume}: that run's output folder {folder} is not on this machine; "
                          "resume it where it ran.")
    lock = claim_dead_run(store, config.resume, status, Path(folder), f"resume={config.resume}")
    if isinstance(lock, Holder):
        raise RunStillRunningError(still_running(config.resume, lock))
    checkpoint = load_checkpoint(checkpoint_path(Path(folder)))
    if checkpoint is None:
        lock.release()
        raise ConfigError(f"resume={config.resume}: that run has no checkpoint to resume from (it finished, died "
                          "before its first epoch ended, or was started before checkpoints existed).")
    return ResumeTarget(config.resume, Path(folder), checkpoint, lock)


def _find_auto(fingerprint: str, store: TrackingStore) -> ResumeTarget | None:
    """resume=auto: the newest unfinished run of this config whose process died and that has a checkpoint."""
    died_early = []
    for run_id, status, folder in unfinished_runs(store, {FINGERPRINT_TAG: fingerprint}, OUTPUT_DIR_TAG):
        if not folder or not Path(folder).is_dir():
            continue  # its folder is not on this machine: whether it lives cannot be told from here
        lock = claim_dead_run(store, run_id, status, Path(folder), "resume=auto")
        if isinstance(lock, Holder):
            print(still_running(run_id, lock))
            continue
        checkpoint = load_checkpoint(checkpoint_path(Path(folder)))
        if checkpoint is not None:
            return ResumeTarget(run_id, Path(folder), checkpoint, lock)
        lock.release()
        if status == "RUNNING":
            died_early.append(run_id)
    if died_early:
        print(f"resume=auto: run(s) {', '.join(died_early)} died before their first checkpoint and are marked "
              "KILLED, so a new run starts.")
    else:
        print("resume=auto: no unfinished run of this config has a checkpoint, so a new run starts.")
    return None


def restore_history(recorder: Recorder, history: CurveHistory, checkpoint: Checkpoint) -> None:
    """Resuming: send the checkpoint's last epoch curves if a kill came between writing the checkpoint and sending
    them, then load the curves of the epochs before the checkpoint into `history` (for the learning-curve plot)."""
    for metrics, step in checkpoint.last_metrics.get("records", []):
        missing = {key: value for key, value in metrics.items() if step not in logged_history(recorder, key)}
        if missing:
            recorder.log_metrics(missing, step)
    for key in CURVE_KEYS.values():
        for step, value in logged_history(recorder, f"epoch/{key}").items():
            if step < checkpoint.global_epoch:
                history.rows.setdefault(step, {})[key] = value


def unlogged(recorder: Recorder, metrics: dict[str, float]) -> dict[str, float]:
    """The final metrics a resumed run has not logged yet: a kill after they were logged (while the artifacts were
    written) must not log them twice at their step."""
    logged = logged_metric_keys(recorder)
    return {key: value for key, value in metrics.items() if key not in logged}
