"""Run identity: the names of the `facebias.*` tags that say which config a run computed, where its files are, and
which sweep it belongs to.

`facebias.tracking` knows none of these names; whoever asks it for runs passes the tags to match.
"""

FINGERPRINT_TAG = "facebias.config_fingerprint"
"""What a run computes: a hash of its resolved config less `resume` (`facebias.sweep.config_fingerprint`)."""
OUTPUT_DIR_TAG = "facebias.output_dir"
"""The run's output folder, where its checkpoints are: what `resume` continues from."""
SWEEP_ROLE_TAG = "facebias.role"
"""`SWEEP_PARENT_ROLE` on the parent run of a sweep."""
SWEEP_PARENT_ROLE = "sweep"
"""The value of `SWEEP_ROLE_TAG` that marks a sweep's parent run."""
SWEEP_KEY_TAG = "facebias.sweep_key"
"""The sweep command (`facebias.sweep.sweep_key`): a rerun of the same command reopens the parent run with this key."""
RESUMED_TAG = "facebias.resumed"
"""`true` on a sweep's parent run that a rerun of its command reopened."""
FAILED_JOBS_TAG = "facebias.failed_jobs"
"""On a sweep's parent run: the jobs that failed, one sentence each (cleared when the sweep is reopened)."""
OFFLINE_ORIGIN_TAG = "facebias.offline_original_run_id"
"""On a run that `python -m facebias.sync` had to create: the id of the run that was recorded offline."""
