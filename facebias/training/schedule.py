"""Stage planning (pure): what each stage trains and the effective epochs/batch size after quick-mode caps."""

from __future__ import annotations

from dataclasses import dataclass, replace

from facebias.config import StageConfig, TrainerConfig, stage_key
from facebias.options import TRAINABLE_PARTS


@dataclass(frozen=True)
class StagePlan:
    """One stage as it will run: 1-based index, trainable parts, optimiser and stopping settings."""

    index: int
    trainable: str
    lr: float
    max_epochs: int
    patience: int
    batch_size: int
    max_train_batches: int | None
    run_eagerly: bool = False

    @property
    def parts(self) -> dict[str, bool]:
        """Which of the model's parts (sub-models) train in this stage."""
        return TRAINABLE_PARTS.get(self.trainable).parts

    @property
    def prefix(self) -> str:
        """The metric prefix of its curves: `stage2` for stage 2."""
        return f"stage{self.index}"

    @property
    def override(self) -> str:
        """The config key a user changes it with: `schedule.stages.1` for stage 2."""
        return stage_key(self.index - 1)


def _capped(value: int, cap: int | None) -> int:
    return value if cap is None else min(value, cap)


def plan_stages(stages: list[StageConfig], trainer: TrainerConfig) -> list[StagePlan]:
    """The stages in order, with the trainer's caps (quick mode) applied."""
    return [
        StagePlan(
            index=index,
            trainable=stage.trainable,
            lr=stage.lr,
            max_epochs=_capped(stage.max_epochs, trainer.max_epochs_cap),
            patience=stage.patience,
            batch_size=_capped(stage.batch_size, trainer.max_batch_size),
            max_train_batches=trainer.max_train_batches,
            run_eagerly=trainer.run_eagerly,
        )
        for index, stage in enumerate(stages, start=1)
    ]


def cap_total_epochs(stages: list[StagePlan], epochs: int) -> list[StagePlan]:
    """The stages in order with at most `epochs` epochs in all: each stage's max_epochs is cut to what is left of
    the budget (counting every stage's max_epochs, whether or not early stopping ends it sooner); stages with
    nothing left are dropped."""
    capped, left = [], epochs
    for stage in stages:
        if left <= 0:
            break
        capped.append(replace(stage, max_epochs=min(stage.max_epochs, left)))
        left -= capped[-1].max_epochs
    return capped
