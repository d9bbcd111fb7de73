"""`python -m facebias.data.prepare data=… data.root=…`: validate and cache a data source, print its dataset card.

It takes the same overrides as training and loads the data the way a run does (facebias.data.sources), so a
real source is prepared (facebias.data.prepared) once, before any training.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from omegaconf import DictConfig

from facebias.cli import Command, run_command
from facebias.config import register_configs, to_train_config
from facebias.data.card import dataset_card
from facebias.data.sources import load_dataset
from facebias.errors import CacheNotWritten, StorageError
from facebias.options import DATA_SOURCES
from facebias.shutdown import as_process

PREPARE = Command(
    prog="python -m facebias.data.prepare",
    config_name="train",
    summary="Validate and cache a data source, then print its dataset card. data=<source> picks the source "
            f"({', '.join(option.name for option in DATA_SOURCES)}); the keys below are those of the default "
            "source, data=<source> brings its own (e.g. data.root for appa_real and kit_arrays).",
    descriptions={"data.root": "the source's folder", "data.cache_dir": "null: $FACEBIAS_CACHE/prepared"},
    listed="data",
    footer="Every other override of `python -m facebias.train` is accepted too (see its --help).",
)


def prepare(cfg: DictConfig) -> int:
    """Validate the composed config, load (and so cache) its data source, print the dataset card; a cache that
    cannot be written is a StorageError here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheNotWritten)
        try:
            dataset = load_dataset(to_train_config(cfg).data)
        except CacheNotWritten as failure:
            raise StorageError(f"could not write the data cache {failure.path} ({failure.reason}): give "
                               "data.cache_dir=<a folder you can write>, or free space there.") from None
    print(dataset_card(dataset))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Validate and cache a data source, then print its dataset card; 1 (2 for a bad override) with one sentence."""
    register_configs()
    return run_command(PREPARE, argv, prepare)


cli = as_process(main)
"""The command's process: `main`, then the process ends (facebias.shutdown)."""

if __name__ == "__main__":
    cli()
