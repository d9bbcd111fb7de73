"""Entry point: `python -m facebias.train [group=option ...]` — compose, validate, hand over to the run recipe.

Hydra composes conf/train.yaml; the config is validated before anything heavy loads, then facebias.run.recipe
trains it (facebias.run.sweep wraps each job of a multirun). This is the one place where heavy imports wait, so
that `--help` and `--cfg job` import neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from facebias.config import TrainConfig, register_configs, to_train_config
from facebias.errors import FacebiasError
from facebias.run.identity import run_tags
from facebias.run.summary import print_summary
from facebias.run.sweep import OBJECTIVE, run_sweep_job

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra task: validate the config, train, print the summary; returns the validation MAE (for sweepers)."""
    from facebias.run.recipe import train

    logging.captureWarnings(True)
    hydra_config = HydraConfig.get()
    choices = dict(hydra_config.runtime.choices)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run = partial(train, resolved=resolved, output_dir=Path(hydra_config.runtime.output_dir),
                  base_dir=Path(hydra.utils.get_original_cwd()), choices=choices)
    if hydra_config.mode == RunMode.MULTIRUN:
        try:
            config: TrainConfig | FacebiasError = to_train_config(cfg)
        except FacebiasError as error:
            config = error
        name = "-".join(str(choices.get(group)) for group in ("backbone", "head", "schedule", "weighting"))
        tags = run_tags(config, choices) if isinstance(config, TrainConfig) else {}
        return run_sweep_job(config, resolved, hydra_config, run, name, tags)
    try:
        config = to_train_config(cfg)
        result = run(config)
    except FacebiasError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    print_summary(result.metrics, config.statistics.level, result.run_id, result.output_dir, result.view_hint)
    return result.metrics.get(OBJECTIVE)


if __name__ == "__main__":
    main()
