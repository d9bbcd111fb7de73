"""End to end in quick mode: weighting=jtt's first pass, error set and curves, checked by value; with upweight 1 its
run is the plain run (the first pass leaves the run's own model and draws as they were); weighting=lds's weights
reach the training loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import QUICK_DATA, run_facebias

pytestmark = pytest.mark.slow

QUICK = ["trainer=smoke", "tracking=none", "trainer.run_eagerly=false", *QUICK_DATA]


def _run(cwd: Path, *overrides: str) -> tuple[Path, dict[tuple[str, int], float]]:
    cwd.mkdir(parents=True, exist_ok=True)
    result = run_facebias(cwd, *QUICK, *overrides)
    if result.returncode != 0:
        pytest.fail(f"the run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    (folder,) = cwd.glob("multirun/single/*/*")
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return folder, {(key, line["step"]): value for line in lines for key, value in line.items() if key != "step"}


def test_jtt_logs_its_first_pass_and_error_set_and_with_upweight_1_is_the_plain_run(tmp_path: Path) -> None:
    folder, metrics = _run(tmp_path / "jtt", "weighting=jtt", "weighting.jtt.first_epochs=1",
                           "weighting.jtt.upweight=1.0")
    record = json.loads((folder / "artifacts" / "jtt_selection.json").read_text())
    assert record["upweighted"] == len(record["indices"]) == round(0.2 * 240) == len(set(record["indices"]))
    assert all(0 <= i < 240 for i in record["indices"])
    assert record["first_pass_epochs"] == 1, "capped at weighting.jtt.first_epochs (quick mode allows 2)"
    assert metrics[("jtt/upweighted", 0)] == 48 and metrics[("jtt/first_pass_epochs", 0)] == 1
    first = sorted(step for key, step in metrics if key == "first_pass/epoch/loss")
    assert first == [0], "one first-pass epoch, its curves apart"
    _, plain = _run(tmp_path / "plain", "weighting=none")
    for key in ("test/mae", "val/mae", "test/gender_bias"):
        assert metrics[(key, 0)] == pytest.approx(plain[(key, 0)], rel=1e-5), key


def test_lds_weights_the_training_loss(tmp_path: Path) -> None:
    folder, metrics = _run(tmp_path, "weighting=lds", "weighting.lds.form=inverse")
    record = json.loads((folder / "artifacts" / "lds_density.json").read_text())
    assert record["form"] == "inverse" and record["sigma"] == 2.0
    assert metrics[("lds/weight_max", 0)] > 1.0 > metrics[("lds/weight_min", 0)]
    assert metrics[("epoch/loss", 0)] != pytest.approx(metrics[("epoch/train_mse", 0)], rel=1e-3)
