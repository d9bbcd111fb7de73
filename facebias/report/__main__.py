"""`python -m facebias.report [key=value ...]`: the results table of a sweep (the most recent one, or `parent=`).

Prints the table as Markdown and writes results.md, results.csv, results.html and results.png into one folder,
which is then logged to the sweep's parent run under `report/`. Keys: conf/report.yaml (`--help` lists them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from facebias.cli import Command, run_command
from facebias.config import tracking_config
from facebias.errors import ConfigError, StorageError
from facebias.report.build import build_report, load_sweep
from facebias.report.render import environment_warning, format_markdown
from facebias.report.table import SPLITS
from facebias.shutdown import as_process
from facebias.tracking.store import TrackingStore, tracking_store

REPORT = Command(
    prog="python -m facebias.report",
    config_name="report",
    summary="The study's results table of a sweep's runs (mean and 95 % interval per experiment; with 3 or more "
            "seeds per experiment, each column's best set marked), as Markdown, CSV, HTML and a plot; logged to the "
            "sweep's parent run under report/.",
    descriptions={
        "parent": "parent run of the sweep (null: the most recent sweep)",
        "split": f"metrics of this split: {', '.join(SPLITS)}",
        "out": "output folder (null: multirun/reports/<parent run id>)",
        "log": "log the files to the parent run under report/",
        "tracking_uri": "MLflow store to read and mark (null: as training finds it: MLFLOW_TRACKING_URI, "
                        "tracking.uri, else ./<tracking.store_dir>/mlflow.db)",
        "tracking.experiment": "MLflow experiment of the sweep",
        "tracking.store_dir": "folder of the default SQLite store",
    },
    flags={"--parent": "parent", "--experiment": "tracking.experiment", "--tracking-uri": "tracking_uri",
           "--split": "split", "--out": "out", "--no-log": "log=false"},
)


def report_store(cfg: DictConfig) -> TrackingStore:
    """The one store the report reads runs from and marks dead runs in: `tracking_uri` if given, else as training
    finds it."""
    store = tracking_store(tracking_config(cfg.tracking), Path.cwd(), cfg.tracking_uri or None, read_by="tracking_uri")
    if store is None:
        raise ConfigError("tracking=none leaves the report no runs to read: drop it, or give tracking_uri=<MLflow "
                          "store>.")
    return store


def report(cfg: DictConfig) -> int:
    """Build, write, print and (unless log=false) log the report of the sweep `cfg` names."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split} is invalid; accepted: {', '.join(SPLITS)}.")
    if not isinstance(cfg.log, bool):
        raise ConfigError(f"log={cfg.log} is invalid; accepted: true, false.")
    if cfg.out and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError(f"out={cfg.out} is a file: give the folder to write the report into (created if needed).")
    store = report_store(cfg)
    parent, children = load_sweep(store, None if cfg.parent is None else str(cfg.parent))
    folder = Path(cfg.out) if cfg.out else Path("multirun") / "reports" / parent.info.run_id
    try:
        table, paths = build_report(store, parent, children, folder, cfg.split, cfg.log)
    except OSError as error:
        raise StorageError(f"could not write the report into {folder}: {error.strerror or error}.") from error
    print(format_markdown(table))
    print()
    warning = environment_warning(table)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {', '.join(path.name for path in paths)} to {folder}")
    if cfg.log:
        print(f"logged them to run {parent.info.run_id} under artifact path report/")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; user errors print `error: <sentence>` on stderr and return 1 (2 for a bad key)."""
    return run_command(REPORT, argv, report)


cli = as_process(main)
"""The command's process: `main`, then the process ends (facebias.shutdown)."""

if __name__ == "__main__":
    cli()
