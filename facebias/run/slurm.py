"""Slurm jobs of a sweep: Hydra's submitit Slurm launcher, made to wait for every job of the array.

Hydra's launcher gives up on the whole sweep at the first job that Slurm ended without a result (cancelled, out of
memory, a node failure, timed out more often than `max_num_timeout` allows), with the later jobs still running.
This one waits for them all and records such a job as a failed job of the sweep (its outcome file names the Slurm
job and its state), so the sweep's parent run ends FAILED naming it; its child run, if it started, is marked KILLED
at the end of the sweep (facebias.run.sweep). Jobs that submitit requeues (preemption, time limit) are waited for
as they come back. Used by conf/hydra/launcher/slurm.yaml and slurm_gpu.yaml.
"""

from __future__ import annotations

import logging
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


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """Submits the jobs of one batch as one Slurm job array and returns when every one of them has ended."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        import submitit

        params = dict(self.params)
        folder = str(params.pop("submitit_folder"))
        private = Path(folder.split("%")[0])  # the pickled jobs hold the command line's values, credentials included
        private.mkdir(parents=True, exist_ok=True)
        private.chmod(0o700)
        executor = submitit.AutoExecutor(cluster="slurm", folder=folder,
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
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
        return [self._wait(job, num, list(overrides), sweep_dir)
                for job, num, overrides in zip(jobs, nums, job_overrides, strict=True)]

    @staticmethod
    def _wait(job: Any, num: int, overrides: list[str], sweep_dir: Path) -> JobReturn:
        """The job's result; for a job Slurm ended without one, a failed outcome and an empty (None) result."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.results()[0]
        except (UncompletedJobError, FailedJobError) as error:
            reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            state = job.state
        message = f"Slurm job {job.job_id} ended {state} without a result ({reason})"
        log.error("job %d: %s", num, message)
        if not any(outcome.num == num and outcome.status != "failed" for outcome in read_outcomes(sweep_dir)):
            write_outcome(sweep_dir, JobOutcome(num, overrides, "failed", None, message))
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)
