"""A facebias process's start-up: importing Keras without the scikit-learn it would load for nothing.

Keras imports scikit-learn while it is itself imported, when scikit-learn is installed (MLflow installs it), only
for its scikit-learn wrappers (`keras.wrappers.SKLearnRegressor` and the like), which facebias never uses: importing
a run's recipe took 0.86x the CPU without it (3.4 s instead of 3.9 s, median of 8 pairs on a 2-core machine). The entry
points that load TensorFlow (a run's recipe, `facebias.predict`) import it inside `keras_without_sklearn()`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

SKLEARN = "sklearn"


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
