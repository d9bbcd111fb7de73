"""Just Train Twice: the error set and weights on a tiny example by hand, its checkpointed state, and on a toy
problem the first model fits a minority badly, which JTT then up-weights and fits better."""

from __future__ import annotations

import numpy as np
import pytest

from facebias.config.mitigation import JTTConfig
from facebias.mitigations.base import FirstPassResult
from facebias.mitigations.jtt import JustTrainTwice, error_set, jtt_weights

keras = pytest.importorskip("keras")


class _Train:
    def __init__(self, ages: np.ndarray) -> None:
        self.ages = ages

    def __len__(self) -> int:
        return len(self.ages)


def test_error_set_and_weights_by_hand() -> None:
    ages = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    predicted = np.array([12.0, 20.0, 45.0, 41.0, 30.0])  # |errors| 2, 0, 15, 1, 20
    asked = []

    def first_pass(epochs: int) -> FirstPassResult:
        asked.append(epochs)
        return FirstPassResult(predicted, epochs=2)

    jtt = JustTrainTwice(JTTConfig(first_epochs=3, share=0.4, upweight=5.0))
    jtt.prepare(_Train(ages), first_pass)
    assert asked == [3]
    assert jtt.selected.tolist() == [4, 2]
    assert jtt.sample_weights().tolist() == [1.0, 1.0, 5.0, 1.0, 5.0]
    assert jtt.metrics() == {"jtt/first_pass_epochs": 2.0, "jtt/upweighted": 2.0}
    record = jtt.artifacts()["jtt_selection.json"]
    assert record["indices"] == [4, 2] and record["smallest_upweighted_error"] == 15.0
    resumed = JustTrainTwice(JTTConfig(first_epochs=3, share=0.4, upweight=5.0))
    resumed.prepare(_Train(ages), lambda epochs: pytest.fail("a resumed run has its error set"), jtt.state())
    assert resumed.sample_weights().tolist() == jtt.sample_weights().tolist()
    assert resumed.artifacts() == jtt.artifacts(), "a resumed run writes the same selection record"
    assert error_set(np.array([1.0, 3.0, 3.0, 0.0]), 0.5).tolist() == [1, 2], "ties: the lower index first"
    assert error_set(np.array([1.0, 3.0]), 0.01).tolist() == [1], "at least one image"
    assert jtt_weights(3, np.array([0]), 2.5).tolist() == [2.5, 1.0, 1.0]


def _toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A majority (90 %) with target 0.3 + 0.2 x and a minority with 0.7 − 0.2 x: one line cannot fit both."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 1)).astype(np.float32)
    minority = np.arange(400) % 10 == 0
    targets = np.where(minority, 0.7 - 0.2 * x[:, 0], 0.3 + 0.2 * x[:, 0]).astype(np.float32)
    return x, targets, minority


def _fit(x: np.ndarray, targets: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(x, targets, sample_weight=weights, batch_size=40, epochs=20, verbose=0, shuffle=False)
    return model.predict(x, verbose=0)[:, 0]


def test_jtt_up_weights_the_minority_the_first_model_fits_badly_and_fits_it_better() -> None:
    x, targets, minority = _toy()
    plain = _fit(x, targets, None)
    jtt = JustTrainTwice(JTTConfig(first_epochs=20, share=0.1, upweight=8.0))
    jtt.prepare(_Train(targets * 100), lambda epochs: FirstPassResult(plain * 100, epochs))
    chosen = np.zeros(len(x), dtype=bool)
    chosen[jtt.selected] = True
    assert chosen[minority].mean() > 0.8, "the error set is mostly the minority"
    assert (chosen & minority).sum() / chosen.sum() > 0.8
    second = _fit(x, targets, jtt.sample_weights())
    mse = {name: [np.mean((p - targets)[group] ** 2) for group in (minority, ~minority)]
           for name, p in {"plain": plain, "jtt": second}.items()}
    assert mse["jtt"][0] < mse["plain"][0] / 2, f"the minority is fitted better: {mse}"
    assert max(mse["jtt"]) < max(mse["plain"]), f"the worst group's error fell: {mse}"
