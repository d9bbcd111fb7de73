"""Sweeps: one MLflow parent run per multirun with every job as its child, resumable by config fingerprint.

`SweepTracking` is a Hydra callback (registered in conf/train.yaml). At the start of a multirun it opens the
parent run — or reopens the parent of an earlier run of the same sweep command, so an interrupted sweep resumes —
and writes its id into the sweep folder, where every job (in whatever process the launcher starts) finds it.
Each job skips itself when a FINISHED child with the same config fingerprint exists, records its outcome in the
sweep folder and never raises, so one failing job does not stop the others. At the end the parent gets the
results table and is marked FINISHED, or FAILED with the failing jobs named.
"""

from __future__ import annotations

import atexit
import json
import logging
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

import facebias.identity as identity
from facebias.config import tracking_config
from facebias.errors import FacebiasError, error_text
from facebias.identity import TRIAL_TAG, config_fingerprint, sweep_key
from facebias.io import write_json, write_text
from facebias.liveness import mark_dead_children
from facebias.redaction import redacted_config, redacted_text
from facebias.run.hydra_files import without_secrets
from facebias.run.launcher_watch import end_with_launcher, mark_launcher
from facebias.run.sweep_progress import SweepProgress, sweep_size
from facebias.shutdown import freeze_heap_at_exit
from facebias.tracking.queries import finished_child
from facebias.tracking.runs import end_run, log_file, open_sweep_parent, record_failed_run
from facebias.tracking.server import wait_for_server
from facebias.tracking.store import TrackingStore, tracking_store
from facebias.tracking.ui import sweep_view_hint

log = logging.getLogger(__name__)

PARENT_FILE = "facebias_sweep.json"
JOBS_FOLDER = "facebias_jobs"
SOURCE_NAME_TAG = "mlflow.source.name"
ENTRY_POINT = Path(__file__).resolve().parents[1] / "train.py"
"""A job's source: the sweep's entry point, whatever process a launcher runs the job in (submitit's, say)."""
OBJECTIVE = "val/mae"
"""What a job returns to Hydra's sweeper: a validation metric, never a test one (no tuning on the test split)."""
BIAS_OBJECTIVE = "val/mean_bias"
"""The second objective of a two-objective search (+search=fair_pareto): the mean of the four validation biases."""
TRIAL_ENV = "FACEBIAS_SEARCH_TRIAL"
"""Set by the search's sweeper (facebias.search) in each job of a trial, via hydra.job.env_set: the trial's number."""


def sweep_objectives(sweeper: Any) -> tuple[str, ...]:
    """(val/mae,), or (val/mae, val/mean_bias) when the sweeper minimises two objectives (`direction` of two)."""
    direction = getattr(sweeper, "direction", None)
    two = direction is not None and not isinstance(direction, str) and len(direction) == 2
    return (OBJECTIVE, BIAS_OBJECTIVE) if two else (OBJECTIVE,)


def objective_values(metrics: Mapping[str, float], objectives: tuple[str, ...]) -> float | tuple[float, ...] | None:
    """What a job returns to the sweeper: one value, a tuple of them, or None when a metric is missing."""
    values = [metrics[name] for name in objectives if name in metrics]
    if len(values) < len(objectives):
        return None
    return values[0] if len(values) == 1 else tuple(values)


def sweep_store(config: DictConfig) -> TrackingStore | None:
    """The store of a multirun (None: tracking disabled): its `tracking` section, with a relative store folder under
    the directory the sweep command was started in (hydra.runtime.cwd), as its jobs resolve it."""
    return tracking_store(tracking_config(config.tracking), Path(config.hydra.runtime.cwd))


@dataclass(frozen=True)
class JobOutcome:
    """What one job of a sweep ended with, as written to <sweep dir>/facebias_jobs/<num>.json."""

    num: int
    overrides: list[str]
    status: str
    run_id: str | None = None
    error: str | None = None

    def describe(self) -> str:
        overrides = " ".join(o for o in self.overrides if not o.startswith("hydra.")) or "(no overrides)"
        return f"job {self.num} ({overrides}): {self.error}"


def write_outcome(sweep_dir: Path, outcome: JobOutcome) -> None:
    """Write (or replace) the outcome file of one job of a sweep, without credentials."""
    write_json(sweep_dir / JOBS_FOLDER / f"{outcome.num}.json", redacted_config(outcome.__dict__))


def read_outcomes(sweep_dir: Path) -> list[JobOutcome]:
    """The outcomes the jobs of a sweep folder have written, by job number."""
    files = sorted((sweep_dir / JOBS_FOLDER).glob("*.json"), key=lambda p: int(p.stem))
    return [JobOutcome(**json.loads(path.read_text())) for path in files]


class SweepTracking(Callback):
    """Hydra callback: opens, and at the end closes, the MLflow parent run of a multirun."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.finished = False
        self.progress: SweepProgress | None = None
        self.store: TrackingStore | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Launchers that start jobs elsewhere (submitit) pickle the callbacks: the progress thread stays here."""
        return {**self.__dict__, "progress": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Reach the store and open the parent before any job is launched: a store that cannot be used (unreachable,
        no login, refused credentials) ends the sweep command with its one sentence and exit status 1 (Hydra turns a
        callback's exception into a warning and launches the jobs all the same; SystemExit passes through it). So does
        a sweep folder that cannot be written (a full disk): its jobs would not find their parent and would train as
        runs of their own, so the parent, if opened, ends FAILED with the sentence and no job is launched."""
        mark_launcher()
        STARTED_SWEEPS.append(Path(config.hydra.sweep.dir))
        batch = config.hydra.sweeper.get("max_batch_size")
        if isinstance(batch, int) and batch < 1:
            print(f"error: hydra.sweeper.max_batch_size={batch} is invalid: use a whole number >= 1 (jobs launched "
                  "at a time), or null for all at once.", file=sys.stderr)
            raise SystemExit(1)
        size = sweep_size(config)
        if size == 0:
            print("error: the sweep has no job: a list of its overrides is empty or matches nothing (e.g. "
                  "experiment=glob(…) that names no experiment; --help lists the options).", file=sys.stderr)
            raise SystemExit(1)
        try:
            self._open_parent(config)
        except FacebiasError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        except OSError as error:
            message = f"cannot write the sweep's folder {config.hydra.sweep.dir}: {error.strerror or error}"
            if self.store is not None and self.parent_run_id is not None:
                end_run(self.store, self.parent_run_id, "FAILED", {identity.ERROR_TAG: message})
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(1) from None
        self.progress = SweepProgress(Path(config.hydra.sweep.dir) / JOBS_FOLDER, size).start()

    def _open_parent(self, config: DictConfig) -> None:
        self.store = store = sweep_store(config)
        if store is None:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        task_overrides = list(config.hydra.overrides.task)
        command = "python -m facebias.train " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
        tags = {identity.SWEEP_COMMAND_TAG: command, identity.SWEEP_DIR_TAG: str(sweep_dir.resolve())}
        name = str(config.get("sweep_name") or "sweep")
        self.parent_run_id = open_sweep_parent(
            store, name,
            where={identity.SWEEP_KEY_TAG: sweep_key(task_overrides, store.experiment)},
            tags={**tags, identity.SWEEP_ROLE_TAG: identity.SWEEP_PARENT_ROLE},
            reopened_tags={identity.RESUMED_TAG: "true"}, stale_tags=[identity.FAILED_JOBS_TAG, identity.ERROR_TAG],
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_json(sweep_dir / PARENT_FILE, {"parent_run_id": self.parent_run_id})
        marked = mark_dead_children(store, self.parent_run_id, "the rerun of its sweep")
        if marked:
            log.warning("job run(s) %s of this sweep died without ending: marked KILLED", ", ".join(marked))
        log.info("MLflow parent run of this sweep: %s (%s)", self.parent_run_id, name)
        atexit.register(self._finish, store, sweep_dir, False)
        OPEN_SWEEPS.append((self, store, sweep_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """End the parent; exit status 1 when a job failed (with tracking disabled too) or the parent cannot be
        ended (Hydra turns a callback's exception into a warning: the command must still fail)."""
        if self.progress is not None:
            self.progress.stop()
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            if self.store is None or self.parent_run_id is None:
                failed = [outcome for outcome in read_outcomes(sweep_dir) if outcome.status == "failed"]
            else:
                failed = self._finish(self.store, sweep_dir, True)
                print(f"view the sweep's runs: {sweep_view_hint(self.store, self.parent_run_id)}", flush=True)
        except FacebiasError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        if failed:
            errors = {outcome.error for outcome in failed}
            summary = (f"each with {failed[0].error}" if len(failed) > 1 and len(errors) == 1
                       else "; ".join(outcome.describe() for outcome in failed))
            which = (f"all {len(failed)} job(s) of the sweep failed" if len(failed) == len(read_outcomes(sweep_dir))
                     else f"{len(failed)} job(s) of the sweep failed (the others ran)")
            print(f"error: {which}: {summary}", file=sys.stderr)
            # Hydra turns a callback's exception into a warning; the sweep command must still exit non-zero.
            raise SystemExit(1)

    def _finish(self, store: TrackingStore, sweep_dir: Path, completed: bool, error: str | None = None
                ) -> list[JobOutcome]:
        """Attach the results table, then end the parent: FINISHED, FAILED (jobs named, or the `error` that stopped
        the sweep, in its `error` tag) or KILLED (cut short).

        A tracking server that is away is waited for (up to tracking.offline_after_s), as the jobs' runs do."""
        if self.finished or self.parent_run_id is None:
            return []
        self.finished = True
        if self.progress is not None:
            self.progress.stop()
        wait_for_server(store.uri, store.offline_after_s)
        failed = [outcome for outcome in read_outcomes(sweep_dir) if outcome.status == "failed"]
        tags = {identity.FAILED_JOBS_TAG: "; ".join(o.describe() for o in failed)[:4000]} if failed else {}
        if error is not None:
            tags[identity.ERROR_TAG] = error
        status = "FAILED" if failed or error is not None else ("FINISHED" if completed else "KILLED")
        try:
            marked = mark_dead_children(store, self.parent_run_id, "the end of its sweep")
            if marked:
                log.warning("job run(s) %s of this sweep ended without ending their run (e.g. cancelled): marked "
                            "KILLED", ", ".join(marked))
            note = self._attach_report(store, self.parent_run_id, sweep_dir)
            if note:
                tags[identity.NOTE_TAG] = note
            multirun = sweep_dir / "multirun.yaml"
            if multirun.is_file():
                without_secrets(multirun)
                log_file(store, self.parent_run_id, multirun)
        finally:
            end_run(store, self.parent_run_id, status, tags)
            log.info("sweep parent run %s ended %s", self.parent_run_id, status)
        return failed

    @staticmethod
    def _attach_report(store: TrackingStore, parent_run_id: str, sweep_dir: Path) -> str | None:
        """Write and log the results table; returns results.md (the parent's description), or None without one."""
        from facebias.report.build import report_for_parent
        from facebias.report.render import format_markdown

        log.info("writing the results table of the sweep")
        try:
            table = report_for_parent(store, parent_run_id, sweep_dir / "report")
        except FacebiasError as error:
            log.warning("no results table for this sweep: %s", error)
            return None
        except Exception:  # the table is an attachment: a bug in it must not keep the parent from ending
            log.exception("no results table for this sweep: building it failed (the parent still ends; rerun "
                          "`python -m facebias.report parent=%s` once fixed)", parent_run_id)
            return None
        log.info("results table of the sweep (also in %s):\n%s", sweep_dir / "report", format_markdown(table))
        return (sweep_dir / "report" / "results.md").read_text(encoding="utf-8")


OPEN_SWEEPS: list[tuple[SweepTracking, TrackingStore, Path]] = []
"""The sweep whose parent run this process opened, with its store and folder (`fail_open_sweep` ends it)."""
STARTED_SWEEPS: list[Path] = []
"""The folder of each sweep this process started (its launcher), tracked or not."""


def sweep_started() -> bool:
    """Whether this process is the launcher of a sweep (`on_multirun_start` ran here)."""
    return bool(STARTED_SWEEPS)


def fail_open_sweep(error: str) -> None:
    """End the parent run of the sweep this process runs, if any is still open, FAILED with `error` (its one
    sentence): Hydra composes each job's command line as it launches it, and one it cannot compose stops the sweep."""
    for sweep, store, sweep_dir in OPEN_SWEEPS:
        sweep._finish(store, sweep_dir, False, error)


TrainFunction = Callable[..., Any]


def run_sweep_job(
    config: Any,
    resolved: dict[str, Any],
    hydra_config: Any,
    train: TrainFunction,
    run_name: str,
    tags: Mapping[str, str],
    store: TrackingStore | None,
) -> float | tuple[float, ...] | None:
    """Run one job of a sweep as a child of the sweep's parent run; never raises (the outcome is recorded).

    `config` is the validated TrainConfig or the ConfigError that validation raised; `store` is where the sweep is
    recorded (None: tracking disabled). A tracking server that is away when the job starts is waited for (up to
    tracking.offline_after_s): an outage between jobs does not fail them.
    """
    end_with_launcher()
    freeze_heap_at_exit()  # the job's process may be a launcher's worker, which ends the usual way
    sweep_dir = Path(hydra_config.sweep.dir)
    num = int(hydra_config.job.num)
    overrides = list(hydra_config.overrides.task)
    parent_file = sweep_dir / PARENT_FILE
    parent_run_id = json.loads(parent_file.read_text())["parent_run_id"] if parent_file.exists() else None
    fingerprint = config_fingerprint(resolved)
    objectives = sweep_objectives(getattr(hydra_config, "sweeper", None))
    trial = hydra_config.job.env_set.get(TRIAL_ENV)
    job_tags = {**tags, identity.JOB_NUM_TAG: str(num), identity.FINGERPRINT_TAG: fingerprint,
                SOURCE_NAME_TAG: str(ENTRY_POINT), **({TRIAL_TAG: str(trial)} if trial is not None else {})}
    opened: list[str] = []
    (sweep_dir / JOBS_FOLDER).mkdir(parents=True, exist_ok=True)
    write_text(sweep_dir / JOBS_FOLDER / f"{num}.started",
               redacted_text(" ".join(o for o in overrides if not o.startswith("hydra."))))
    try:
        if isinstance(config, Exception):
            raise config
        if parent_run_id and store is not None:
            wait_for_server(store.uri, store.offline_after_s)
            done = finished_child(store, parent_run_id, {identity.FINGERPRINT_TAG: fingerprint})
            if done is not None:
                log.info("job %d already FINISHED as run %s with the same config: skipped", num, done.info.run_id)
                write_outcome(sweep_dir, JobOutcome(num, overrides, "skipped", done.info.run_id))
                return objective_values(done.data.metrics, objectives)
        result = train(config, parent_run_id=parent_run_id, extra_tags=job_tags, on_run_open=opened.append)
    except KeyboardInterrupt:
        raise
    except Exception as error:
        message = error_text(error)
        log.error("job %d failed: %s", num, message)
        if not opened and parent_run_id and store is not None:
            opened.append(record_failed_run(store, run_name, job_tags, parent_run_id, message))
        write_outcome(sweep_dir, JobOutcome(num, overrides, "failed", opened[0] if opened else None, message))
        return None
    write_outcome(sweep_dir, JobOutcome(num, overrides, "finished", result.run_id))
    return objective_values(result.metrics, objectives)
