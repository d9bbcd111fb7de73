"""Progress of long steps, shown the way Keras' `fit` shows it: a bar on a terminal (tqdm on stderr, Keras' Progbar
for predictions), nothing when the output is not a terminal or when the run says `trainer.verbose=0`."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

_settings = {"quiet": False}


def set_verbosity(verbose: str | int) -> None:
    """Follow `trainer.verbose`: 0 silences every bar of this process; anything else shows them on a terminal."""
    _settings["quiet"] = str(verbose) == "0"


def shown(stream: TextIO | None = None) -> bool:
    """Whether bars are shown on `stream` (default stderr): it is a terminal and the run is not quiet."""
    stream = sys.stderr if stream is None else stream
    return not _settings["quiet"] and hasattr(stream, "isatty") and stream.isatty()


def bar(total: int | None, description: str, unit: str = "image") -> tqdm:
    """A progress bar of `total` units (None: not known) on stderr (disabled where `shown` says no); update it
    with `.update(n)`."""
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=not shown(), dynamic_ncols=True)


def keras_verbose() -> int:
    """The `verbose` of a Keras `predict`: 1 (its progress bar, on stdout) where bars are shown, else 0."""
    return 1 if shown(sys.stdout) else 0
