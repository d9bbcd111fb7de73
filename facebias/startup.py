"""A facebias process's start-up: importing TensorFlow and Keras quietly, and without the scikit-learn Keras would
load for nothing.

Keras imports scikit-learn while it is itself imported, when scikit-learn is installed (MLflow installs it), only
for its scikit-learn wrappers (`keras.wrappers.SKLearnRegressor` and the like), which facebias never uses: importing
a run's recipe took 0.86x the CPU without it (3.4 s instead of 3.9 s, median of 8 pairs on a 2-core machine).
TensorFlow's C++ side writes log lines to stderr while it starts (oneDNN's notice, CPU features, a failed `cuInit`
on a machine without a GPU) that say nothing to a facebias user. The entry points that load TensorFlow (a run's
recipe, `facebias.predict`) import it inside `loading_tensorflow()`.
"""

from __future__ import annotations

import faulthandler
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

SKLEARN = "sklearn"
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
"""TensorFlow's environment variable for the least severe C++ log line it writes: 0 all (INFO and up), 1 WARNING
and up, 2 ERROR and up, 3 FATAL only."""
QUIET_LEVEL = "3"
"""The level TensorFlow is imported with unless the user set `TF_CPP_MIN_LOG_LEVEL`: its errors reach facebias as
Python exceptions anyway, and a failed `cuInit` on a machine without a GPU is logged as an error."""
NATIVE_LOG_LINE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] )")
"""A C++ log line of TensorFlow's (abseil's format: severity and date, time, thread, file:line]), FATAL excepted, or
abseil's notice that it logs before it is set up."""


@contextmanager
def keras_without_sklearn() -> Iterator[None]:
    """Hide scikit-learn from the imports made inside the block, if Keras is imported there for the first time.

    Only the block is affected: afterwards `import sklearn` works as usual in the process, but Keras' scikit-learn
    wrappers, which checked once, report scikit-learn as missing. Where Keras or scikit-learn is already imported
    (a notebook, a test process), nothing changes.
    """
    if "keras" in sys.modules or SKLEARN in sys.modules:
        yield
        return
    sys.modules[SKLEARN] = None  # type: ignore[assignment]  # None in sys.modules makes the import fail
    try:
        yield
    finally:
        if SKLEARN in sys.modules and sys.modules[SKLEARN] is None:
            del sys.modules[SKLEARN]


@contextmanager
def stderr_without(unwanted: re.Pattern[str]) -> Iterator[None]:
    """Everything written to file descriptor 2 in the block, by Python or by native code, goes to a file and is
    written back to stderr after it, less the lines `unwanted` matches. A crash in the block still says so on the
    real stderr (faulthandler). Without a usable file descriptor 2, nothing changes."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    was_enabled = faulthandler.is_enabled()
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        faulthandler.enable(file=real)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(real, 2)
            if was_enabled:
                faulthandler.enable()
            else:
                faulthandler.disable()
            os.close(real)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not unwanted.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


@contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """Import TensorFlow in the block without its C++ log lines, unless the user set `TF_CPP_MIN_LOG_LEVEL` (then
    TensorFlow writes what that level lets through: `TF_CPP_MIN_LOG_LEVEL=0` shows every line).

    TensorFlow reads the level while it is imported: `QUIET_LEVEL` is set for the block only, so that the processes
    a run starts later (a sweep's jobs) decide for themselves. The lines TensorFlow writes before its logging is set
    up ignore the level; they are filtered out of the block's stderr (`stderr_without`). Where TensorFlow is
    already imported, nothing changes.
    """
    if "tensorflow" in sys.modules or TF_LOG_LEVEL in os.environ:
        yield
        return
    os.environ[TF_LOG_LEVEL] = QUIET_LEVEL
    try:
        with stderr_without(NATIVE_LOG_LINE):
            yield
    finally:
        os.environ.pop(TF_LOG_LEVEL, None)


@contextmanager
def loading_tensorflow() -> Iterator[None]:
    """The block in which a facebias process first imports TensorFlow and Keras: quiet (`quiet_tensorflow`) and
    without scikit-learn (`keras_without_sklearn`)."""
    with quiet_tensorflow(), keras_without_sklearn():
        yield
