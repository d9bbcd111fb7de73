"""What a mitigation may change in the stage loop: the loss, extra curves, and state that checkpoints keep.

The loop (facebias.training.loop) calls these hooks and never asks which mitigation it runs. The default hooks
change nothing: the plain MSE, no curves, no state.
"""

from __future__ import annotations

from typing import Any


class TrainingHooks:
    """The loop's hooks; a mitigation overrides the ones it needs."""

    def loss(self) -> Any:
        """The Keras loss to compile every stage with (the same object each time, so state carries on); None: MSE."""
        return None

    def curves(self) -> dict[str, float]:
        """Curves to add to the epoch's (sent as `stage{k}/<name>` and `epoch/<name>`)."""
        return {}

    def state(self) -> Any:
        """JSON-friendly state for the epoch-end checkpoint; None: nothing to keep."""
        return None

    def restore(self, state: Any) -> None:
        """Put back what `state` returned (from a checkpoint)."""
