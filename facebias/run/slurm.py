"""Slurm jobs of a sweep: Hydra's submitit Slurm launcher, made to wait for every job of the array.

Hydra's launcher gives up on the whole sweep at the first job that Slurm ended without a result (cancelled, out of
memory, a node failure, timed out more often than `max_num_timeout` allows), with the later jobs still running.
This one waits for them all and records such a job as a failed job of the sweep (its outcome file names the Slurm
job and its state), so the sweep's parent run ends FAILED naming it; its child run, if it started, is marked KILLED
at the end of the sweep (facebias.run.sweep). Jobs that submitit requeues (preemption, time limit) are waited for
as they come back. A job killed on its node — NODE_FAIL, or FAILED with its processes ended by a signal (kill -9,
the kernel's OOM killer, a crash) — is requeued here with `scontrol requeue`, up to `max_num_timeout` times: Slurm
requeues a job by itself only when it sees the node fail. Used by conf/hydra/launcher/slurm.yaml and slurm_gpu.yaml.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from facebias.run.sweep import JobOutcome, read_outcomes, write_outcome

log = logging.getLogger(__name__)

POLL_S = 2.0
"""How often the launcher looks at the jobs it waits for (submitit asks sacct itself, at most every minute)."""


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """Submits the jobs of one batch as one Slurm job array and returns when every one of them has ended."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        import submitit

        params = dict(self.params)
        folder = str(params.pop("submitit_folder"))
        private = Path(folder.split("%")[0])  # the pickled jobs hold the command line's values, credentials included
        private.mkdir(parents=True, exist_ok=True)
        private.chmod(0o700)
        comebacks = int(params.pop("max_num_timeout"))
        executor = submitit.AutoExecutor(cluster="slurm", folder=folder, slurm_max_num_timeout=comebacks)
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in generic else f"slurm_{key}": value
                                      for key, value in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)
        nums = list(range(initial_job_idx, initial_job_idx + len(job_overrides)))
        for num, overrides in zip(nums, job_overrides, strict=True):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        count = len(nums)
        jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * count, nums,
                                  [f"job_id_for_{num}" for num in nums], [Singleton.get_state()] * count)
        return self._collect(dict(zip(nums, jobs, strict=True)), dict(zip(nums, job_overrides, strict=True)),
                             sweep_dir, comebacks)

    @classmethod
    def _collect(cls, jobs: dict[int, Any], overrides: dict[int, Sequence[str]], sweep_dir: Path,
                 requeues: int) -> list[JobReturn]:
        """Every job's result, by job number, watching them all at once: a job killed on its node is requeued while
        Slurm still holds its record (`MinJobAge`), however long the others run, and watched again once requeued."""
        left = dict.fromkeys(jobs, requeues)
        requeued: set[int] = set()
        returns: dict[int, JobReturn] = {}
        while len(returns) < len(jobs):
            for num, job in jobs.items():
                if num in returns or (num in requeued and in_queue(job.job_id)):
                    continue
                if num in requeued:
                    requeued.discard(num)
                    job.watcher.clear()  # submitit keeps the state of an ended job: it must read it again
                if not job.done():
                    continue
                ended = cls._ended(job, num, list(overrides[num]), sweep_dir, requeues - left[num] + 1, requeues)
                if ended is None:
                    left[num] -= 1
                    requeued.add(num)
                else:
                    returns[num] = ended
            if len(returns) < len(jobs):
                time.sleep(POLL_S)
        return [returns[num] for num in jobs]

    @staticmethod
    def _ended(job: Any, num: int, overrides: list[str], sweep_dir: Path, attempt: int, requeues: int
               ) -> JobReturn | None:
        """The result of an ended job; None when it was killed on its node and is requeued now (its `attempt`-th
        requeue, up to `requeues`); for a job Slurm ended without a result, a failed outcome and an empty (None)
        result."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.results()[0]
        except (UncompletedJobError, FailedJobError) as error:
            reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            state = job.state
        killed = killed_on_node(job.job_id)
        if killed is not None and attempt <= requeues and requeue(job.job_id):
            log.warning("job %d: Slurm job %s was killed on its node (%s): requeued (%d of at most %d times); with "
                        "resume=auto it continues its run from its last checkpoint", num, job.job_id, killed, attempt,
                        requeues)
            return None
        message = f"Slurm job {job.job_id} ended {state} without a result ({reason})"
        log.error("job %d: %s", num, message)
        if not any(outcome.num == num and outcome.status != "failed" for outcome in read_outcomes(sweep_dir)):
            write_outcome(sweep_dir, JobOutcome(num, overrides, "failed", None, message))
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)


def killed_on_node(job_id: str) -> str | None:
    """How Slurm ended job `job_id` when it was killed on its node — `NODE_FAIL`, or `FAILED` with a process of its
    last run ended by a signal (sacct: `ExitCode` 0:9 for a `kill -9`) — else None (it ended by itself, was
    cancelled, timed out or ran out of memory under cgroups: none of which a requeue mends)."""
    rows = [line.split("|") for line in subprocess.run(
        ["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,State,ExitCode"], capture_output=True, text=True,
        timeout=60).stdout.splitlines() if line.count("|") == 2]
    if not rows:
        return None
    state = rows[0][1]
    signals = [exit_code for _, _, exit_code in rows if exit_code.partition(":")[2] not in ("", "0")]
    if state == "NODE_FAIL" or (state == "FAILED" and signals):
        return f"{state}, {'signal ' + signals[0].partition(':')[2] if signals else 'node failure'}"
    return None


def requeue(job_id: str) -> bool:
    """Put an ended job back in Slurm's queue (the same job id, its script run again); False if Slurm refused."""
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        log.error("Slurm job %s cannot be requeued: %s", job_id, result.stderr.strip()[:300])
    return result.returncode == 0


def in_queue(job_id: str) -> bool:
    """Whether job `job_id` is in Slurm's queue (pending, held back after a requeue, or running)."""
    return bool(subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                               timeout=60).stdout.strip())
