"""Importing Keras without scikit-learn and TensorFlow without its native log lines (facebias/startup.py), each
case in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facebias.startup import NATIVE_LOG_LINE

IMPORT_IN_THE_BLOCK = """
import sys
from facebias.startup import keras_without_sklearn
with keras_without_sklearn():
    import keras
print("sklearn" in sys.modules)
import sklearn.base
print(sklearn.base.BaseEstimator.__name__)
"""

IMPORTED_BEFORE = """
import sys
import sklearn
from facebias.startup import keras_without_sklearn
with keras_without_sklearn():
    import keras.src.wrappers.fixes as fixes
print(fixes.sklearn is sys.modules["sklearn"])
"""


def _python(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_keras_imported_in_the_block_loads_no_sklearn_and_sklearn_imports_after_it() -> None:
    assert _python(IMPORT_IN_THE_BLOCK) == ["False", "BaseEstimator"]


def test_an_already_imported_sklearn_is_left_to_keras() -> None:
    assert _python(IMPORTED_BEFORE) == ["True"]


QUIET_BLOCK = """
import os, sys
from facebias.startup import quiet_tensorflow
with quiet_tensorflow():
    print("level in the block", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), flush=True)
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1796578465.087644   30036 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"native line\\n")
    print("python line", file=sys.stderr)
    os.write(2, b"E0000 00:00:1796578289.270508   28625 cuda_platform.cc:52] failed call to cuInit\\n")
    os.write(2, b"F0000 00:00:1796578289.270508   28625 cpu_feature_guard.cc:78] fatal\\n")
print("level after it", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), flush=True)
"""


def _quiet_block(**environment: str) -> tuple[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"} | environment
    result = subprocess.run([sys.executable, "-c", QUIET_BLOCK], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, result.stderr


def test_the_quiet_block_drops_tensorflows_native_log_lines_and_keeps_the_rest_in_order() -> None:
    stdout, stderr = _quiet_block()
    assert stdout.splitlines() == ["level in the block 3", "level after it None"]
    assert stderr.splitlines() == ["native line", "python line",
                                   "F0000 00:00:1796578289.270508   28625 cpu_feature_guard.cc:78] fatal"]


def test_a_level_the_user_set_is_kept_and_nothing_is_filtered() -> None:
    stdout, stderr = _quiet_block(TF_CPP_MIN_LOG_LEVEL="1")
    assert stdout.splitlines() == ["level in the block 1", "level after it 1"]
    assert stderr.splitlines() == [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796578465.087644   30036 port.cc:153] oneDNN custom operations are on.", "native line",
        "python line", "E0000 00:00:1796578289.270508   28625 cuda_platform.cc:52] failed call to cuInit",
        "F0000 00:00:1796578289.270508   28625 cpu_feature_guard.cc:78] fatal"]


@pytest.mark.slow
def test_tensorflow_imported_with_the_users_level_0_logs_its_native_lines() -> None:
    """The way back to TensorFlow's lines (the quiet import itself is checked on a real run's stderr in
    tests/run/test_train_e2e.py)."""
    code = "from facebias.startup import loading_tensorflow\nwith loading_tensorflow():\n    import tensorflow\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(NATIVE_LOG_LINE.match(line) for line in result.stderr.splitlines()), result.stderr[-3000:]
