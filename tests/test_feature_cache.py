"""The frozen-stage feature cache: when it applies, hits and misses, corrupt files, clearing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facebias.training.feature_cache import FeatureStore, cache_blocker


def test_cache_applies_only_to_head_stages_without_augmentation() -> None:
    assert cache_blocker("head", augmentation_enabled=False, enabled=True) is None
    assert "trains backbone layers (trainable=all)" in cache_blocker("all", False, True)
    assert "trains backbone layers (trainable=backbone)" in cache_blocker("backbone", False, True)
    assert "augmentation is on" in cache_blocker("head", True, True)
    assert "trainer.feature_cache=false" in cache_blocker("head", False, False)


def test_store_counts_hits_and_misses_and_keys_differ(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    key = store.key("backbone-a", "data-1", "train", 4)
    assert store.key("backbone-b", "data-1", "train", 4) != key
    assert store.key("backbone-a", "data-2", "train", 4) != key
    assert store.key("backbone-a", "data-1", "valid", 4) != key
    assert np.array_equal(store.features(key, lambda: features), features)
    assert np.array_equal(store.features(key, lambda: pytest.fail("computed again")), features)
    assert (store.hits, store.misses) == (1, 1)


def test_corrupt_file_is_rebuilt_never_trusted(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    key = store.key("b", "d", "train", 2)
    store.save(key, np.ones((2, 3), dtype=np.float32))
    tampered = np.ones((2, 3), dtype=np.float32)
    tampered[0, 0] = 7
    np.save(tmp_path / f"{key}.npy", tampered)
    assert store.load(key) is None
    assert not (tmp_path / f"{key}.npy").exists()
    (tmp_path / f"{key}.npy").write_bytes(b"not a numpy file")
    (tmp_path / f"{key}.json").write_text(json.dumps({"sha256": "0"}))
    rebuilt = store.features(key, lambda: np.zeros((2, 3), dtype=np.float32))
    assert rebuilt.sum() == 0 and store.misses == 1


def test_clear_removes_every_feature_set(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    for split in ("train", "valid"):
        store.save(store.key("b", "d", split, 1), np.zeros((1, 2), dtype=np.float32))
    assert store.clear() == 2
    assert list(tmp_path.iterdir()) == []
