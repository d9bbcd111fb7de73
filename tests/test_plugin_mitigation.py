"""Adding a mitigation takes one module and one YAML: weights ∝ age, defined in tests/mitigations_plugin_age.py and
registered from there, with its YAML in a temporary config folder on Hydra's search path, trains in quick mode
through `python -m facebias.train`'s entry point, no facebias file touched; what its hooks gave is checked by
value against the synthetic training split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK_DATA, REPO_ROOT, compose_train

from facebias.config import to_train_config
from facebias.data.sources import load_dataset

pytestmark = pytest.mark.slow

LAUNCH = ("import runpy, sys; sys.path.insert(0, {tests!r}); import mitigations_plugin_age as plugin; "
          "plugin.register(); sys.argv[0] = {train!r}; runpy.run_module('facebias.train', run_name='__main__')")
"""`python -m facebias.train ARGS`, after registering the mitigation in the same process."""


def test_a_registered_mitigation_with_its_yaml_trains_end_to_end(tmp_path: Path) -> None:
    conf = tmp_path / "plugin_conf"
    (conf / "weighting").mkdir(parents=True)
    (conf / "weighting" / "age_weighted.yaml").write_text("name: age_weighted\n")
    launch = LAUNCH.format(tests=str(REPO_ROOT / "tests"), train=str(REPO_ROOT / "facebias" / "train.py"))
    command = [sys.executable, "-c", launch, f"hydra.searchpath=[file://{conf}]",
               "weighting=age_weighted", "trainer=smoke", "tracking=none", *QUICK_DATA]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = tmp_path.glob("multirun/single/*/*")
    ages = load_dataset(to_train_config(compose_train(["trainer=smoke", *QUICK_DATA])).data).train.ages
    weights = np.array(json.loads((folder / "artifacts" / "age_weights.json").read_text())["weights"])
    np.testing.assert_allclose(weights, ages / ages.mean(), rtol=1e-6)
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    values = {(key, line["step"]): value for line in lines for key, value in line.items() if key != "step"}
    assert values[("age_weighted/oldest_weight", 0)] == pytest.approx(weights.max(), rel=1e-6)
    assert values[("epoch/age_weight_max", 0)] == pytest.approx(weights.max(), rel=1e-6), "its curve, every epoch"
    assert values[("epoch/loss", 0)] != pytest.approx(values[("epoch/train_mse", 0)], rel=1e-3), "a weighted loss"
    assert ("test/mae", 0) in values and values[("test/mae", 0)] > 0
