"""Input pipelines: uint8 batches of the right shapes, seeded reshuffling, memory-mapped sources, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebias.config import AugmentationConfig

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from facebias.data.pipeline import batches_per_epoch, inference_dataset, training_dataset  # noqa: E402
from facebias.runtime import predict_ages  # noqa: E402

N, SIZE, BATCH = 50, 12, 8
EPOCH = batches_per_epoch(N, BATCH)


def _labelled_images(n: int = N) -> np.ndarray:
    """Image i is filled with the value i, so a batch shows which samples it holds."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, SIZE, SIZE, 3)).copy()


def _textured_images(n: int = N) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _ids() -> np.ndarray:
    return np.arange(N, dtype=np.float32)


def _batches(dataset: tf.data.Dataset, count: int) -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.asarray(part) for part in element) for element in dataset.take(count)]


def _epoch_orders(seed: int, epochs: int = 1, first_epoch: int = 0) -> list[list[int]]:
    dataset = training_dataset(_labelled_images(), _ids(), None, BATCH, seed, first_epoch=first_epoch)
    ids = [int(i) for _, y in _batches(dataset, epochs * EPOCH) for i in y]
    return [ids[e * N:(e + 1) * N] for e in range(epochs)]


def test_training_batches_are_uint8_with_the_right_shapes() -> None:
    dataset = training_dataset(_labelled_images(), _ids(), _ids(), BATCH, seed=0)
    x_spec, y_spec, w_spec = dataset.element_spec
    assert (x_spec.dtype, tuple(x_spec.shape)) == (tf.uint8, (None, SIZE, SIZE, 3))
    assert (y_spec.dtype, w_spec.dtype) == (tf.float32, tf.float32)
    sizes = [len(x) for x, _, _ in _batches(dataset, EPOCH + 1)]
    assert sizes == [BATCH] * (EPOCH - 1) + [N % BATCH, BATCH], "one short last batch per epoch, then the next epoch"
    assert all(x.dtype == np.uint8 and x.shape[1:] == (SIZE, SIZE, 3) for x, _, _ in _batches(dataset, 3))


def test_every_sample_appears_once_per_epoch_and_epochs_are_reshuffled() -> None:
    first, second = _epoch_orders(seed=0, epochs=2)
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second


def test_a_batch_reads_its_rows_in_file_order() -> None:
    ids = _epoch_orders(seed=0)[0]
    assert all(ids[i:i + BATCH] == sorted(ids[i:i + BATCH]) for i in range(0, N, BATCH))


def test_same_seed_same_order_other_seed_other_order() -> None:
    assert _epoch_orders(seed=3, epochs=2) == _epoch_orders(seed=3, epochs=2)
    assert _epoch_orders(seed=3) != _epoch_orders(seed=4)


def test_the_order_does_not_depend_on_tensorflows_global_seed() -> None:
    tf.random.set_seed(1)
    before = _epoch_orders(seed=5)
    tf.random.set_seed(2)
    assert _epoch_orders(seed=5) == before


def test_a_later_stage_continues_the_sequence_of_epochs() -> None:
    assert _epoch_orders(seed=0, first_epoch=1) == _epoch_orders(seed=0, epochs=2)[1:]


def test_max_batches_cuts_every_epoch_to_its_first_batches() -> None:
    capped = training_dataset(_labelled_images(), _ids(), None, BATCH, 0, max_batches=2)
    ids = [[int(i) for i in y] for _, y in _batches(capped, 4)]
    full = _epoch_orders(seed=0, epochs=2)
    assert batches_per_epoch(N, BATCH, 2) == 2
    assert ids == [full[0][:BATCH], full[0][BATCH:2 * BATCH], full[1][:BATCH], full[1][BATCH:2 * BATCH]]


def test_weights_and_targets_travel_with_their_images() -> None:
    ids = _ids()
    dataset = training_dataset(_labelled_images(), ids, 10 * ids + 1, BATCH, seed=0)
    for x, y, w in _batches(dataset, EPOCH):
        np.testing.assert_array_equal(x[:, 0, 0, 0], y)
        np.testing.assert_array_equal(w, 10 * y + 1)


def test_a_memory_mapped_npy_file_is_a_source(tmp_path: Path) -> None:
    images = _textured_images()
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    for x, y in _batches(training_dataset(mapped, _ids(), None, BATCH, seed=0), EPOCH):
        np.testing.assert_array_equal(x, images[y.astype(int)])
    inferred = np.concatenate([np.asarray(x) for x in inference_dataset(mapped, None, BATCH)])
    np.testing.assert_array_equal(inferred, images)


def test_inference_batches_are_in_order_and_carry_targets() -> None:
    images, ids = _textured_images(), _ids()
    batches = _batches(inference_dataset(images, ids, BATCH), EPOCH + 1)
    assert len(batches) == EPOCH
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), ids)


def _augmented(config: AugmentationConfig | None, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    return _batches(training_dataset(_textured_images(), _ids(), None, BATCH, seed, config), 2)


def test_augmentation_changes_training_batches_only_when_enabled() -> None:
    images = _textured_images()
    for config in (None, AugmentationConfig(enabled=False)):
        for x, y in _augmented(config):
            np.testing.assert_array_equal(x, images[y.astype(int)])
    augmented = _augmented(AugmentationConfig(enabled=True))
    for x, y in augmented:
        assert x.dtype == np.uint8 and x.shape == images[y.astype(int)].shape
        assert not np.array_equal(x, images[y.astype(int)])
    same = _augmented(AugmentationConfig(enabled=True))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(augmented, same, strict=True)), "seeded"


def test_flip_mirrors_some_images_and_keeps_the_others() -> None:
    images = _textured_images()
    config = AugmentationConfig(enabled=True, horizontal_flip=True, crop_fraction=0.0, brightness=0.0)
    flipped = []
    for x, y in _augmented(config):
        for image, i in zip(x, y.astype(int), strict=True):
            mirrored = np.array_equal(image, images[i][:, ::-1])
            assert mirrored or np.array_equal(image, images[i])
            flipped.append(mirrored)
    assert any(flipped) and not all(flipped)


def test_brightness_shifts_each_image_by_one_amount_within_the_range() -> None:
    images = _textured_images()
    config = AugmentationConfig(enabled=True, horizontal_flip=False, crop_fraction=0.0, brightness=0.1)
    for x, y in _augmented(config):
        for image, i in zip(x, y.astype(int), strict=True):
            original = images[i].astype(int)
            unclipped = (original > 30) & (original < 225)
            shifts = np.unique((image.astype(int) - original)[unclipped])
            assert shifts.max() - shifts.min() <= 1 and abs(shifts.mean()) <= 0.1 * 255 + 1


def test_crop_resizes_back_to_the_image_size() -> None:
    config = AugmentationConfig(enabled=True, horizontal_flip=False, crop_fraction=0.3, brightness=0.0)
    for x, _ in _augmented(config):
        assert x.shape[1:] == (SIZE, SIZE, 3) and x.dtype == np.uint8


def test_predict_ages_reads_a_memory_mapped_split(tmp_path: Path) -> None:
    images = _textured_images()
    np.save(tmp_path / "images.npy", images)
    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8")
    scaled = keras.ops.cast(inputs, "float32") / 255.0  # raw pixel values saturate the sigmoid to 0 or 1e-36
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(scaled))
    model = keras.Model(inputs, outputs)
    predicted = predict_ages(model, np.load(tmp_path / "images.npy", mmap_mode="r"), batch_size=BATCH)
    assert predicted.std() > 1.0, "ages that vary, so that a mixed-up image order would show"
    np.testing.assert_allclose(predicted, 100 * model(images).numpy().reshape(-1), rtol=1e-5)
