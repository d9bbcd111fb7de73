"""Hydra's own record of a run kept free of credentials, and the one warning about a credential in the config.

Hydra writes `<output dir>/.hydra/` (config.yaml, hydra.yaml, overrides.yaml) just before a job starts, and a
sweeper writes `<sweep dir>/multirun.yaml` before its jobs start, each with the command line's values as given. The
callback `HydraFilesWithoutSecrets` (registered in conf/train.yaml) rewrites them with their credentials redacted
(facebias.redaction) as each job starts, before facebias records or trains anything; and when a run or sweep starts
with a password or token in its config it says once that it is kept out of the records, and how to keep it off the
command line too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from facebias.io import write_text
from facebias.redaction import redacted_text, secret_keys

ECHOES = ("hydra.overrides.", "hydra.job.", "hydra.runtime.")
"""Where Hydra repeats the command line's values: a credential there is the one in the key it sets."""


def without_secrets(file: Path) -> None:
    """Rewrite the text file `file` with its credentials redacted; a file without any is left untouched."""
    text = file.read_text(encoding="utf-8")
    clean = redacted_text(text)
    if clean != text:
        write_text(file, clean)


def credential_keys(config: DictConfig) -> list[str]:
    """The keys of a composed config (its `hydra` section included) whose values carry a credential."""
    container = OmegaConf.to_container(config, resolve=False)
    return [key for key in secret_keys(container) if not key.startswith(ECHOES)]


def secret_warning(keys: list[str]) -> str:
    """The warning for a config whose `keys` carry credentials."""
    return (f"warning: {', '.join(keys)} carries a password or token: facebias connects with it but records and "
            "prints it as *** (MLflow params and tags, artifacts, output files, logs). A command line, though, can "
            "be read by every user of this machine (`ps`): keep the password off it with MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD (a tracking server), or a ~/.pgpass file or PGPASSWORD (PostgreSQL), and a "
            "URI without it (docs/user-guide/team-server.md).")


def hydra_records(config: DictConfig) -> list[Path]:
    """The files Hydra wrote for this job: its .hydra/ YAML files and, in a sweep, the sweep's multirun.yaml."""
    files = []
    if config.hydra.output_subdir is not None:
        files += sorted((Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)).glob("*.yaml"))
    if config.hydra.mode == RunMode.MULTIRUN:
        files.append(Path(config.hydra.sweep.dir) / "multirun.yaml")
    return [file for file in files if file.is_file()]


class HydraFilesWithoutSecrets(Callback):
    """Hydra callback: warns once about a credential in the config; rewrites Hydra's files of each job redacted."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._warn(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._warn(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        for file in hydra_records(config):
            without_secrets(file)

    @staticmethod
    def _warn(config: DictConfig) -> None:
        keys = credential_keys(config)
        if keys:
            print(secret_warning(keys), file=sys.stderr)
