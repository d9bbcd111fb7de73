"""Entry point: `python -m facebias.train [group=option ...]` — compose, validate, hand over to the run recipe.

Hydra composes conf/train.yaml; the config is validated before anything heavy loads, then facebias.run.start
trains it (facebias.run.sweep wraps each job of a multirun), importing TensorFlow only once the run can start.
`--help` and `--cfg job` import neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import Any, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from facebias.config import TrainConfig, register_configs, to_train_config, tracking_config
from facebias.errors import FacebiasError, UnknownKeyError
from facebias.identity import run_tags
from facebias.overrides import explain, hydra_refusal
from facebias.redaction import redacted_text, redacting_process_output
from facebias.run.start import train
from facebias.run.summary import print_summary
from facebias.run.sweep import OBJECTIVE, fail_open_sweep, run_sweep_job, sweep_started
from facebias.shutdown import as_process
from facebias.tracking.store import tracking_store

register_configs()
redacting_process_output()  # before Hydra logs a job's overrides: every log line of the process without credentials


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | tuple[float, ...] | None:
    """Hydra task: validate the config, train, print the summary; returns the validation MAE (for sweepers; a
    two-objective search gets the MAE and the mean bias).

    The config is validated and the data source's folder checked before the tracking store is created or opened;
    the store is reached and the run to resume found before TensorFlow is imported (facebias.run.start); a sweep
    job that is skipped (already FINISHED) or whose config is invalid never imports it.
    """
    from facebias.data.sources import check_source  # here, not at the top: it loads pandas, which --help needs not

    hydra_config = HydraConfig.get()
    multirun = hydra_config.mode == RunMode.MULTIRUN
    try:
        valid = to_train_config(cfg)
        check_source(valid.data)
        config: TrainConfig | FacebiasError = valid
    except FacebiasError as error:
        if not multirun:
            print(f"error: {redacted_text(str(error))}", file=sys.stderr)
            raise SystemExit(USAGE_ERROR if isinstance(error, UnknownKeyError) else 1) from error
        config = error
    logging.captureWarnings(True)
    choices = dict(hydra_config.runtime.choices)
    resolved = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))  # a DictConfig becomes a dict
    try:
        store = tracking_store(tracking_config(resolved["tracking"]), Path(hydra.utils.get_original_cwd()))
    except FacebiasError as error:
        print(f"error: {redacted_text(str(error))}", file=sys.stderr)
        raise SystemExit(1) from error
    run = partial(train, resolved=resolved, output_dir=Path(hydra_config.runtime.output_dir), store=store,
                  choices=choices)
    if multirun:
        name = "-".join(str(choices.get(group)) for group in ("backbone", "head", "schedule", "weighting"))
        tags = run_tags(config, choices) if isinstance(config, TrainConfig) else {}
        return run_sweep_job(config, resolved, hydra_config, run, name, tags, store)
    assert isinstance(config, TrainConfig)  # a single run with an invalid config has exited above
    try:
        result = run(config)
    except FacebiasError as error:
        print(f"error: {redacted_text(str(error))}", file=sys.stderr)
        raise SystemExit(1) from error
    print_summary(result.metrics, config.statistics.level, result.run_id, result.output_dir, result.view_hint,
                  result.model)
    return result.metrics.get(OBJECTIVE)


USAGE_ERROR = 2
"""Exit status of a command line Hydra cannot compose (no such option or key, a value of the wrong type)."""


def stopped_command(error: Exception) -> tuple[int, str | None]:
    """The exit status and one sentence for an error that stopped the command outside a run (None: a bug, left to
    its traceback): a sweeper's bad setting (a FacebiasError); Hydra's refusal of its flags or output folder; or,
    in a sweep's launcher, whatever stopped the sweep (a launcher or sweeper that cannot start its jobs, e.g.
    submitit without Slurm's commands)."""
    if isinstance(error, FacebiasError):
        return (USAGE_ERROR if isinstance(error, UnknownKeyError) else 1), str(error)
    if isinstance(error, (ValueError, OSError)):
        refusal = hydra_refusal(error)
        if refusal is not None:
            return (1 if isinstance(error, OSError) else USAGE_ERROR), refusal
    if sweep_started():
        raised_in = Path(traceback.extract_tb(error.__traceback__)[-1].filename)
        package = next((part for part in reversed(raised_in.parts[:-1]) if part.endswith("-packages")), None)
        origin = raised_in.parts[raised_in.parts.index(package) + 1] if package else raised_in.name
        first_line = (str(error).strip().splitlines() or [""])[0]
        return 1, f"the sweep stopped: {first_line or type(error).__name__} ({type(error).__name__} in {origin})."
    return 1, None


def run_main() -> None:
    """`python -m facebias.train` and the `facebias-train` script (as `cli`): Hydra's main, with a bad override or
    flags Hydra cannot combine reported as one sentence (exit status 2), and so is an output folder Hydra cannot
    write (exit status 1).

    Hydra prints composition errors itself unless HYDRA_FULL_ERROR=1, which makes it raise them instead; set here
    so that `explain` can word them. A user who sets HYDRA_FULL_ERROR=1 gets Hydra's full report, as documented.
    Hydra finds conf/ relative to this file only when it runs as `__main__`; the console script imports it as
    `facebias.train`, so HYDRA_MAIN_MODULE tells Hydra to look from this file all the same.
    """
    users = {key: os.environ.get(key) for key in ("HYDRA_FULL_ERROR", "HYDRA_MAIN_MODULE")}
    os.environ["HYDRA_FULL_ERROR"] = "1"
    os.environ["HYDRA_MAIN_MODULE"] = "__main__"
    try:
        main()
    except HydraException as error:
        sentence = explain(error)
        fail_open_sweep(sentence)  # a job of a sweep that Hydra cannot compose ends the sweep, its parent FAILED
        if users["HYDRA_FULL_ERROR"] == "1":
            raise
        print(f"error: {redacted_text(sentence)}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
    except Exception as error:
        status, stopped = stopped_command(error)
        if stopped is None:
            raise
        fail_open_sweep(stopped)
        if users["HYDRA_FULL_ERROR"] == "1":
            raise
        print(f"error: {redacted_text(stopped)}", file=sys.stderr)
        raise SystemExit(status) from None
    finally:
        for key, value in users.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


cli = as_process(run_main)
"""The command's process: `run_main`, then the process ends (facebias.shutdown)."""

if __name__ == "__main__":
    cli()
