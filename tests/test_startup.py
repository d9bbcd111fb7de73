"""Importing Keras without scikit-learn (facebias/startup.py), each case in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

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
