"""The frozen-stage feature cache: when it applies, hits and misses, corrupt files, clearing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facebias.training.feature_cache import (
    FeatureStore,
    cache_blocker,
    feature_batch_size,
    payoff_blocker,
    stage_backbone_reads,
)
from facebias.training.loop import LoopContext


def test_cache_applies_only_to_head_stages_without_augmentation() -> None:
    assert cache_blocker("head", augmentation_enabled=False, enabled=True) is None
    assert "trains backbone layers (trainable=all)" in cache_blocker("all", False, True)
    assert "trains backbone layers (trainable=backbone)" in cache_blocker("backbone", False, True)
    assert "augmentation is on" in cache_blocker("head", True, True)
    assert "trainer.feature_cache=false" in cache_blocker("head", False, False)


def test_cache_pays_only_when_the_stage_reads_more_images_than_one_feature_pass() -> None:
    # quick mode: 2 epochs of 3 batches of 8 out of 240 training images, 64 validation images each epoch
    assert stage_backbone_reads(2, 240, 8, 3, 64) == 2 * (24 + 64) == 176
    # no cap: every training image every epoch (the short last batch too); a cap never counts more than there are
    assert stage_backbone_reads(10, 100, 32, None, 20) == 10 * (100 + 20)
    assert stage_backbone_reads(1, 20, 8, 5, 4) == 20 + 4
    assert payoff_blocker(176, 240 + 64, stored=False) == (
        "it reads at most 176 images through the backbone, not more than one feature pass (304 images)")
    assert payoff_blocker(304, 304, stored=False) is not None
    assert payoff_blocker(305, 304, stored=False) is None
    assert payoff_blocker(176, 304, stored=True) is None  # stored features cost nothing


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


def test_feature_pass_batches_hold_about_two_million_pixels() -> None:
    assert feature_batch_size((224, 224, 3)) == 2097152 // (224 * 224) == 41
    assert feature_batch_size((128, 128, 3)) == 128
    assert feature_batch_size((64, 64, 3)) == 256  # 512 images would fit: capped at 256
    assert feature_batch_size((299, 299, 3)) == 32  # 23 would fit: never fewer than 32


def test_feature_pass_matches_keras_predict_of_the_extractor() -> None:
    keras = pytest.importorskip("keras")
    from facebias.config import BackboneConfig, HeadConfig
    from facebias.data.pipeline import inference_dataset
    from facebias.models.assemble import build_model
    from facebias.training.feature_cache import FeaturePass, feature_extractor

    keras.utils.set_random_seed(1)
    backbone = BackboneConfig(name="small_cnn", input_size=16, preprocessing="unit", widths=[4, 8])
    model = build_model(backbone, HeadConfig(name="mlp", dropout=0.5, hidden_units=[8]), (24, 24), 16)
    images = np.random.default_rng(1).integers(0, 256, (37, 24, 24, 3), dtype=np.uint8)
    features = FeaturePass(model)
    features.batch_size = 8  # 4 full batches and a short one
    expected = feature_extractor(model).predict(inference_dataset(images, None, 64), verbose=0)  # one batch
    np.testing.assert_allclose(features(images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features(images[:5]), expected[:5], rtol=1e-5, atol=1e-6)
    assert features(images).shape == (37, 8) and features(images).dtype == np.float32
    assert features._run.experimental_get_tracing_count() == 1  # every split and batch length: one trace


def _head_stage_val_losses(tmp_path: Path, cached: bool, max_batches: int | None = None,
                           epochs: int = 3, n_images: int = 40) -> tuple[list[float], LoopContext]:
    keras = pytest.importorskip("keras")
    from facebias.config import BackboneConfig, HeadConfig, StageConfig, TrainerConfig
    from facebias.models.assemble import build_model
    from facebias.training.loop import FeatureCacheContext, run_stage
    from facebias.training.schedule import plan_stages

    keras.utils.set_random_seed(0)
    backbone = BackboneConfig(name="small_cnn", input_size=32, preprocessing="unit", widths=[4, 8])
    model = build_model(backbone, HeadConfig(name="mlp", dropout=0.5, hidden_units=[8]), (32, 32), 32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    targets = rng.uniform(0.1, 0.9, n_images).astype("float32")
    weights = rng.uniform(0.5, 2.0, n_images).astype("float32")
    stage = plan_stages([StageConfig(trainable="head", lr=1e-2, max_epochs=epochs, patience=5, batch_size=8)],
                        TrainerConfig(max_train_batches=max_batches))[0]
    logged: list[float] = []
    cache = FeatureCacheContext(FeatureStore(tmp_path / "features"), "digest", enabled=cached)
    context = LoopContext(lambda m, s: logged.extend(v for k, v in m.items() if k == "stage1/val_loss"), verbose=0,
                          seed=3, feature_cache=cache)
    run_stage(model, stage, (images, targets, weights), (images[:16], targets[:16]), 0, context)
    return logged, context


def test_cached_head_stage_matches_the_uncached_one(tmp_path: Path) -> None:
    # 44 images in batches of 8: the cached stage runs each epoch's 6 steps (the last one short) in one call
    uncached, plain = _head_stage_val_losses(tmp_path, cached=False, n_images=44)
    cached, with_cache = _head_stage_val_losses(tmp_path, cached=True, n_images=44)
    assert "backbone recomputed every epoch because the feature cache is off" in plain.notes[0]
    assert "head trained on cached backbone features (0 hit(s), 2 miss(es))" in with_cache.notes[0]
    assert len(cached) == len(uncached) == 3
    np.testing.assert_allclose(cached, uncached, rtol=1e-5, atol=1e-7)
    _, again = _head_stage_val_losses(tmp_path, cached=True, n_images=44)
    assert "(2 hit(s), 0 miss(es))" in again.notes[0]


def test_capped_stage_recomputes_the_backbone_unless_features_are_stored(tmp_path: Path) -> None:
    # 1 epoch of 1 batch of 8 + 16 validation images = 24 backbone reads < one feature pass of 40 + 16
    _, capped = _head_stage_val_losses(tmp_path, cached=True, max_batches=1, epochs=1)
    assert capped.notes[0] == ("stage 1: backbone recomputed every epoch because it reads at most 24 images through "
                               "the backbone, not more than one feature pass (56 images)")
    assert capped.cache_counts == [(0, 0)]
    assert list((tmp_path / "features").glob("*.npy")) == []
    _head_stage_val_losses(tmp_path, cached=True)  # 3 full epochs: 3 * 56 reads > 56, so it computes them
    _, reuses = _head_stage_val_losses(tmp_path, cached=True, max_batches=1, epochs=1)
    assert reuses.notes[0] == "stage 1: head trained on cached backbone features (2 hit(s), 0 miss(es))"
