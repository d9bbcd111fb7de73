"""Everything MLflow: where runs are recorded, what a run records (riding out server outages), reading runs back.

The rest of the project talks to a `recorder.Recorder`; only this package imports mlflow. It knows no facebias tag
names (they live in `facebias.identity`): callers pass the tags they match on. Import from the modules:

- `store`: which store (the tracking URI), one MlflowClient per URI, the experiment, SQLite contention retries.
- `server`: whether a tracking server answers, and the one sentence for a store that cannot be used.
- `params`: a nested config as flat MLflow params.
- `recorder`: what a run records, into MLflow (kept and resent through an outage) or, untracked, into its folder.
- `runs`: opening and ending runs: a training run (FINISHED / FAILED / KILLED), a sweep's parent, a failed job's.
- `offline`: the journal of a run whose server stayed away, as written to <output_dir>/tracking_offline/.
- `sync`: uploading such a folder into a store (`python -m facebias.sync`).
- `queries`: reading runs back, for resume, sweeps and the report.
"""
