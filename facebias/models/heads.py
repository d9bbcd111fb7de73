"""The regression head: optional dropout, ReLU hidden layers, one sigmoid output (apparent age / 100)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


def build_head(feature_dim: int, dropout: float, hidden_units: Sequence[int]) -> keras.Model:
    """`linear`: hidden_units=[] and dropout=0 → Dense(1, sigmoid); `mlp`: Dropout(0.5) → 128 → 32 → 1."""
    inputs = keras.Input(shape=(feature_dim,), name="features")
    x = inputs
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    for index, units in enumerate(hidden_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{index}")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="age", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="head")
