"""`python -m facebias.report`: the results table of a sweep (the most recent one, or `--parent RUN_ID`).

Prints the table as Markdown and writes results.md, results.csv, results.html and results.png into one folder,
which is then logged to the sweep's parent run under `report/`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from facebias.config import TrackingConfig, register_configs
from facebias.errors import FacebiasError
from facebias.report.build import build_report, load_sweep
from facebias.report.render import format_markdown
from facebias.report.table import SPLITS
from facebias.tracking.store import resolve_tracking_uri

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m facebias.report",
        description="The study's results table of a sweep's runs (mean and 95 %% interval per experiment, the best "
                    "and those not distinguishable from it marked), as Markdown, CSV, HTML and a plot; logged to "
                    "the sweep's parent run under `report/`.",
    )
    parser.add_argument("--parent", metavar="RUN_ID", help="parent run of the sweep (default: the most recent sweep)")
    parser.add_argument("--experiment", help="MLflow experiment (default: tracking.experiment of the training config)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store (default: as training finds it: MLFLOW_TRACKING_URI, tracking.uri, else "
                             "./<tracking.store_dir>/mlflow.db)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="metrics of this split (default: test)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default: multirun/reports/<parent run id>)")
    parser.add_argument("--no-log", action="store_true", help="do not log the files to the parent run")
    return parser.parse_args(argv)


def training_tracking() -> TrackingConfig:
    """The `tracking` section of the training config as composed by default (conf/train.yaml)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="report"):
        section = compose(config_name="train").tracking
    return TrackingConfig(**OmegaConf.to_container(section, resolve=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print `error: <sentence>` on stderr and return 1."""
    args = parse_args(argv)
    try:
        tracking = training_tracking()
        tracking_uri = args.tracking_uri or resolve_tracking_uri(tracking, Path.cwd())
        experiment = args.experiment or tracking.experiment
        parent, children = load_sweep(tracking_uri, experiment, args.parent)
        folder = args.out or Path("multirun") / "reports" / parent.info.run_id
        table, paths = build_report(tracking_uri, parent, children, folder, args.split, not args.no_log)
    except (FacebiasError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_markdown(table))
    print()
    print(f"wrote {', '.join(path.name for path in paths)} to {folder}")
    if not args.no_log:
        print(f"logged them to run {parent.info.run_id} under artifact path report/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
