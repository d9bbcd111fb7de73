"""What a run computes with besides its config, as its tags: the versions of Python, TensorFlow, Keras, numpy and
MLflow, and the number of CPU threads TensorFlow's operations use. Runs that differ in them can differ in their
numbers with the same config and seed (docs/concepts/reproducibility.md). Read without importing TensorFlow.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

from facebias.identity import (
    CPU_THREADS_TAG,
    KERAS_VERSION_TAG,
    MLFLOW_VERSION_TAG,
    NUMPY_VERSION_TAG,
    PYTHON_VERSION_TAG,
    TENSORFLOW_VERSION_TAG,
)

PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    TENSORFLOW_VERSION_TAG: ("tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")),
    KERAS_VERSION_TAG: ("keras", ("keras", "keras-nightly")),
    NUMPY_VERSION_TAG: ("numpy", ("numpy",)),
    MLFLOW_VERSION_TAG: ("mlflow", ("mlflow", "mlflow-skinny")),
}
"""Tag → (the package's module, the distributions that install it, the usual one first)."""
NOT_INSTALLED = "none"
INTRA_OP_THREADS = "TF_NUM_INTRAOP_THREADS"
"""TensorFlow's environment variable for the threads of one operation (its default: one per usable CPU)."""


def package_version(module: str, distributions: tuple[str, ...]) -> str:
    """The version of `module`: its `__version__` when it is imported, else that of the first of `distributions`
    that is installed; `NOT_INSTALLED` when none is."""
    version = getattr(sys.modules.get(module), "__version__", None)
    if isinstance(version, str):
        return version
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def cpu_threads() -> int:
    """How many threads TensorFlow runs one CPU operation on: `TF_NUM_INTRAOP_THREADS` when it is a positive number,
    else one per CPU this process may use (a container's cpuset or `taskset` lowers it), as TensorFlow does."""
    setting = os.environ.get(INTRA_OP_THREADS, "").strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def environment_tags() -> dict[str, str]:
    """`facebias.version.python`, `.tensorflow`, `.keras`, `.numpy`, `.mlflow` and `facebias.cpu_threads` of this
    process."""
    tags = {PYTHON_VERSION_TAG: platform.python_version()}
    tags.update({tag: package_version(module, names) for tag, (module, names) in PACKAGES.items()})
    tags[CPU_THREADS_TAG] = str(cpu_threads())
    return tags
