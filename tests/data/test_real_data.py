"""The real-data sources on small faithful fixtures: an APPA-REAL-shaped release folder and starting-kit arrays."""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from facebias.config import AppaRealDataConfig, KitArraysDataConfig
from facebias.data import kit_arrays
from facebias.data.appa_real import load_appa_real
from facebias.data.kit_arrays import load_kit_arrays, require_labels
from facebias.errors import ConfigError, DataError
from facebias.vocab import ETHNICITIES, EXPRESSIONS, GENDERS

SIZE = 16
SPLIT_IDS = {"train": [0, 1, 2, 3], "valid": [4, 5, 6, 7], "test": [8, 9, 10, 11]}
FACE_SIZES = [(40, 40), (52, 44), (64, 64), (30, 36)]
"""(width, height) of the face crops, cycled: the release mixes resolutions."""
GT_HEADER = ["file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"]
CATEGORY_HEADER = ["race", "notes", "happiness", "file", "time", "makeup", "gender"]
"""Shuffled column order with an extra column, as tolerated by the loader."""
RAW_GENDER = ["male", "Female"]
RAW_RACE = ["caucasian", "Asian ", "AfroAmerican"]
RAW_HAPPINESS = ["happy", "slightlyhappy", "Neutral", "other"]


def file_name(i: int) -> str:
    return f"{i:06d}.jpg"


def green(i: int) -> int:
    """The green level that identifies image i (steps of 20 survive JPEG compression)."""
    return 10 + 20 * i


def apparent_age(i: int) -> float:
    return 5.25 + 7 * i


def expected_attributes(i: int) -> tuple[str, str, str]:
    """The vocabulary spelling of image i's raw gender, race and happiness."""
    return ("male", "female")[i % 2], ("caucasian", "asian", "afroamerican")[i % 3], EXPRESSIONS[i % 4]


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def edit_csv(path: Path, edit: Callable[[list[list[str]]], list[list[str]] | None]) -> None:
    rows = read_csv(path)
    write_csv(path, edit(rows) or rows)


def make_release(root: Path) -> Path:
    """12 images in 3 splits: face crops (textured) red-dominant, whole images blue-dominant, green encodes the id."""
    rng = np.random.default_rng(0)
    for split, ids in SPLIT_IDS.items():
        (root / split).mkdir(parents=True)
        gt_rows = [GT_HEADER]
        category_rows = []
        for i in ids:
            width, height = FACE_SIZES[i % len(FACE_SIZES)]
            face = (np.array([250, green(i), 10]) + rng.integers(-12, 13, size=(height, width, 3))).clip(0, 255)
            Image.fromarray(face.astype(np.uint8)).save(root / split / f"{file_name(i)}_face.jpg", quality=95)
            Image.new("RGB", (90, 70), (10, green(i), 250)).save(root / split / file_name(i))
            age = apparent_age(i)
            gt_rows.append([file_name(i), str(30 + i), f"{age}", "1.5", str(int(age) + 3)])
            values = {
                "race": RAW_RACE[i % 3], "notes": "x", "happiness": RAW_HAPPINESS[i % 4], "file": file_name(i),
                "time": "modernphoto", "makeup": "nomakeup", "gender": RAW_GENDER[i % 2],
            }
            category_rows.append([values[column] for column in CATEGORY_HEADER])
        rng.shuffle(category_rows)
        write_csv(root / f"gt_avg_{split}.csv", gt_rows)
        write_csv(root / f"allcategories_{split}.csv", [CATEGORY_HEADER, *category_rows])
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path / "appa-real-release")


def appa_config(root: Path, **overrides: object) -> AppaRealDataConfig:
    return replace(AppaRealDataConfig(root=str(root), image_size=SIZE), **overrides)


def raises_one_line(error: type[Exception], call: Callable[[], object], *fragments: str) -> str:
    """Run `call`, expect `error`, check the message is one line holding every fragment; return it."""
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    return message


def truncate(path: Path) -> None:
    """Cut a JPEG inside its entropy-coded data: the header stays intact, the end of the scan is lost."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])


# ---------------------------------------------------------------------------------------------------------- APPA-REAL


def test_release_loads_every_split_resized_with_ages_and_vocabularies(release: Path) -> None:
    dataset = load_appa_real(appa_config(release))
    assert dataset.name == "appa_real"
    assert dataset.image_size == (SIZE, SIZE)
    for split, ids in SPLIT_IDS.items():
        data = dataset.splits[split]
        assert data.images.shape == (len(ids), SIZE, SIZE, 3)
        assert data.images.dtype == np.uint8
        np.testing.assert_allclose(data.ages, [apparent_age(i) for i in ids])
        np.testing.assert_allclose(data.attributes["real_age"], [int(apparent_age(i)) + 3 for i in ids])
        assert list(data.attributes["file"]) == [file_name(i) for i in ids]
        assert list(data.attributes["num_ratings"]) == [30 + i for i in ids]
        assert set(data.attributes["makeup"]) == {"nomakeup"}
        assert "notes" not in data.attributes.columns
    train = dataset.train.attributes
    assert set(train["gender"]) == set(GENDERS)
    assert set(train["ethnicity"]) == set(ETHNICITIES)
    assert set(train["expression"]) == set(EXPRESSIONS)
    assert list(train["age_group"]) == ["<20", "<20", "<20", "20-39"]


def test_attributes_are_joined_by_file_name_not_row_position(release: Path) -> None:
    dataset = load_appa_real(appa_config(release))
    for split in dataset.splits.values():
        for image, (_, row) in zip(split.images, split.attributes.iterrows(), strict=True):
            i = round((float(image[..., 1].mean()) - 10) / 20)
            assert row["file"] == file_name(i)
            assert (row["gender"], row["ethnicity"], row["expression"]) == expected_attributes(i)


def test_images_are_rgb_and_crop_suffix_picks_the_face_or_whole_image(release: Path) -> None:
    faces = load_appa_real(appa_config(release)).train.images.astype(float)
    assert faces[..., 0].mean() > 230 and faces[..., 2].mean() < 30
    whole = load_appa_real(appa_config(release, crop_suffix="")).train.images.astype(float)
    assert whole[..., 0].mean() < 30 and whole[..., 2].mean() > 230


def test_attributes_dir_and_nothing_written(release: Path, tmp_path: Path) -> None:
    attributes_dir = tmp_path / "attributes"
    attributes_dir.mkdir()
    for path in release.glob("allcategories_*.csv"):
        path.rename(attributes_dir / path.name)
    before = sorted(release.rglob("*")) + sorted(attributes_dir.rglob("*"))
    dataset = load_appa_real(appa_config(release, attributes_dir=str(attributes_dir)))
    assert len(dataset.test) == 4
    assert sorted(release.rglob("*")) + sorted(attributes_dir.rglob("*")) == before


@pytest.mark.parametrize(
    ("remove", "fragment"),
    [
        ("valid", "valid"),
        ("gt_avg_test.csv", "gt_avg_test.csv"),
        ("allcategories_valid.csv", "allcategories_valid.csv"),
    ],
)
def test_missing_parts_of_the_release_are_named(release: Path, remove: str, fragment: str) -> None:
    target = release / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    raises_one_line(DataError, lambda: load_appa_real(appa_config(release)), "incomplete", fragment, "gt_avg_{split}")


def test_missing_root_is_named(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    raises_one_line(DataError, lambda: load_appa_real(appa_config(root)), str(root), "does not exist", "data.root")


def test_csv_missing_a_column_names_file_column_and_found_columns(release: Path) -> None:
    edit_csv(release / "gt_avg_valid.csv", lambda rows: [row[:-1] for row in rows])
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        "gt_avg_valid.csv", "real_age", "columns found: file_name, num_ratings, apparent_age_avg, apparent_age_std",
    )


def test_allcategories_missing_race_names_it(release: Path) -> None:
    edit_csv(release / "allcategories_train.csv", lambda rows: [["ethnicity", *rows[0][1:]], *rows[1:]])
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        "allcategories_train.csv", "lacks the column(s) race", "columns found: ethnicity, notes, happiness",
    )


def test_unknown_attribute_value_names_file_line_column_value_and_accepted(release: Path) -> None:
    path = release / "allcategories_test.csv"
    rows = read_csv(path)
    line = next(number for number, row in enumerate(rows, start=1) if row[3] == file_name(9))
    rows[line - 1][0] = "Hispanic"
    write_csv(path, rows)
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        f"allcategories_test.csv line {line}", "race='Hispanic'", "accepted: asian, afroamerican, caucasian",
    )


@pytest.mark.parametrize("value", ["", "nan", "-1", "120.5", "abc"])
def test_invalid_age_names_file_line_and_value(release: Path, value: str) -> None:
    def spoil(rows: list[list[str]]) -> None:
        rows[2][2] = value

    edit_csv(release / "gt_avg_valid.csv", spoil)
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        "gt_avg_valid.csv line 3", f"apparent_age_avg={value!r}", "from 0 to 120",
    )


def test_images_without_attribute_rows_are_named(release: Path) -> None:
    edit_csv(release / "allcategories_valid.csv", lambda rows: [row for row in rows if row[3] != file_name(6)])
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        "1 image(s) of", "gt_avg_valid.csv", "no row in", "allcategories_valid.csv", "000006",
    )


def test_attribute_rows_without_images_are_named(release: Path) -> None:
    stray = ["asian", "", "happy", "000099.jpg", "", "", "male"]
    edit_csv(release / "allcategories_train.csv", lambda rows: [*rows, stray])
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)), "1 row(s) of", "allcategories_train.csv", "000099"
    )


def test_duplicated_image_rows_are_refused(release: Path) -> None:
    edit_csv(release / "gt_avg_train.csv", lambda rows: [*rows, rows[1]])
    raises_one_line(DataError, lambda: load_appa_real(appa_config(release)), "gt_avg_train.csv", "more than once")


def test_a_split_with_no_rows_is_refused(release: Path) -> None:
    edit_csv(release / "gt_avg_test.csv", lambda rows: rows[:1])
    raises_one_line(DataError, lambda: load_appa_real(appa_config(release)), "gt_avg_test.csv", "empty")


def test_missing_images_are_listed_with_their_count(release: Path) -> None:
    for path in release.glob("*/*_face.jpg"):
        path.unlink()
    message = raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        "12 image(s)", "train/000000.jpg_face.jpg", "(12 in all)", "data.crop_suffix='_face.jpg'",
    )
    assert "test/000011.jpg_face.jpg" not in message


def test_bad_images_fail_listing_all_of_them(release: Path) -> None:
    truncate(release / "train" / f"{file_name(1)}_face.jpg")
    (release / "test" / f"{file_name(10)}_face.jpg").write_bytes(b"not a jpeg at all")
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release)),
        "2 image(s)", "train/000001.jpg_face.jpg (image file is truncated",
        "test/000010.jpg_face.jpg (cannot identify", "data.on_bad_image=skip",
    )


def test_truncated_jpeg_is_caught_even_if_pillow_was_told_to_pad(release: Path, monkeypatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    truncate(release / "valid" / f"{file_name(5)}_face.jpg")
    raises_one_line(DataError, lambda: load_appa_real(appa_config(release)), "valid/000005.jpg_face.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_bad_images_are_skipped_and_logged_on_request(release: Path, caplog) -> None:
    truncate(release / "train" / f"{file_name(2)}_face.jpg")
    with caplog.at_level(logging.WARNING, logger="facebias.data"):
        dataset = load_appa_real(appa_config(release, on_bad_image="skip"))
    assert list(dataset.train.attributes["file"]) == [file_name(0), file_name(1), file_name(3)]
    np.testing.assert_allclose(dataset.train.ages, [apparent_age(0), apparent_age(1), apparent_age(3)])
    assert "skipping 1 unreadable image(s)" in caplog.text and "train/000002.jpg_face.jpg" in caplog.text


def test_a_split_emptied_by_skipping_is_refused(release: Path) -> None:
    for path in (release / "valid").glob("*_face.jpg"):
        truncate(path)
    raises_one_line(
        DataError, lambda: load_appa_real(appa_config(release, on_bad_image="skip")), "valid split is empty", "all 4"
    )


@pytest.mark.parametrize(
    ("key", "value", "fragment"), [("on_bad_image", "ignore", "fail, skip"), ("image_size", 0, ">= 1")]
)
def test_invalid_config_values_are_config_errors(release: Path, key: str, value: object, fragment: str) -> None:
    raises_one_line(ConfigError, lambda: load_appa_real(appa_config(release, **{key: value})), f"data.{key}", fragment)


# ------------------------------------------------------------------------------------------------------- kit arrays

KIT_SIZES = {"train": 5, "valid": 4, "test": 3}
KIT_HW = 8
RAW_META = [("Male", "caucasian", "slightlyhappy"), ("female", "Asian", "happy"), ("male", "afroamerican", "Neutral"),
            ("female", "caucasian", "other")]


def rgb_image(i: int) -> tuple[int, int, int]:
    return 200 + i, 100, 20 + i


def make_kit(root: Path, dtype: type = np.float32, test_labels: bool = False, test_meta: bool = False) -> Path:
    """Kit arrays: BGR images of a solid colour per image, ages in years, unicode meta (test labels withheld)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n in KIT_SIZES.items():
        rgb = np.array([np.full((KIT_HW, KIT_HW, 3), rgb_image(i)) for i in range(n)])
        np.save(root / f"data_{split}.npy", rgb[..., ::-1].astype(dtype))
        if split != "test" or test_labels:
            np.save(root / f"labels_{split}.npy", (10.5 + 6 * np.arange(n)).astype(np.float32))
        if split != "test" or test_meta or test_labels:
            np.save(root / f"meta_data_{split}.npy", np.array([RAW_META[i % 4] for i in range(n)]))
    return root


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    return make_kit(tmp_path / "kit")


def kit_config(root: Path, **overrides: object) -> KitArraysDataConfig:
    return replace(KitArraysDataConfig(root=str(root), image_size=KIT_HW), **overrides)


def test_kit_loads_as_rgb_uint8_with_ages_and_vocabularies(kit: Path) -> None:
    dataset = load_kit_arrays(kit_config(kit))
    assert dataset.name == "kit_arrays"
    assert dataset.extras == {"unlabeled_splits": "test"}
    train = dataset.train
    assert train.images.shape == (5, KIT_HW, KIT_HW, 3) and train.images.dtype == np.uint8
    assert [tuple(image[0, 0]) for image in train.images] == [rgb_image(i) for i in range(5)]
    np.testing.assert_allclose(train.ages, 10.5 + 6 * np.arange(5))
    assert list(train.attributes["gender"]) == ["male", "female", "male", "female", "male"]
    assert list(train.attributes["ethnicity"]) == ["caucasian", "asian", "afroamerican", "caucasian", "caucasian"]
    assert list(train.attributes["expression"]) == ["slightlyhappy", "happy", "neutral", "other", "slightlyhappy"]
    assert list(train.attributes["age_group"]) == ["<20", "<20", "20-39", "20-39", "20-39"]
    require_labels("train", train)


def test_unlabeled_test_split_has_nan_ages_unknown_groups_and_refuses_evaluation(kit: Path) -> None:
    test = load_kit_arrays(kit_config(kit)).test
    assert len(test) == 3 and np.isnan(test.ages).all()
    assert set(test.attributes["age_group"]) == {"unknown"}
    assert set(test.attributes["gender"]) == {"unknown"}
    raises_one_line(DataError, lambda: require_labels("test", test), "test split", "3 of its 3", "withheld", "valid")


def test_unlabeled_split_keeps_its_meta_when_present(tmp_path: Path) -> None:
    dataset = load_kit_arrays(kit_config(make_kit(tmp_path / "kit", test_meta=True)))
    assert list(dataset.test.attributes["ethnicity"]) == ["caucasian", "asian", "afroamerican"]
    assert set(dataset.test.attributes["age_group"]) == {"unknown"}


def test_labelled_test_split_is_used(tmp_path: Path) -> None:
    dataset = load_kit_arrays(kit_config(make_kit(tmp_path / "kit", test_labels=True)))
    assert dataset.extras == {}
    np.testing.assert_allclose(dataset.test.ages, [10.5, 16.5, 22.5])


def test_rgb_channel_order_is_kept(kit: Path) -> None:
    images = load_kit_arrays(kit_config(kit, channel_order="rgb")).train.images
    assert tuple(images[1, 0, 0]) == rgb_image(1)[::-1]


def test_uint8_kit_and_resizing(tmp_path: Path) -> None:
    dataset = load_kit_arrays(kit_config(make_kit(tmp_path / "kit", dtype=np.uint8), image_size=12))
    assert dataset.valid.images.shape == (4, 12, 12, 3)
    assert tuple(dataset.valid.images[3, 6, 6]) == rgb_image(3)


def test_object_meta_needs_the_opt_in(kit: Path) -> None:
    np.save(kit / "meta_data_valid.npy", np.array([list(RAW_META[i]) for i in range(4)], dtype=object))
    raises_one_line(
        DataError, lambda: load_kit_arrays(kit_config(kit)),
        "meta_data_valid.npy", "stored as Python objects", "pickle", "data.allow_object_arrays=true",
    )
    dataset = load_kit_arrays(kit_config(kit, allow_object_arrays=True))
    assert list(dataset.valid.attributes["ethnicity"]) == ["caucasian", "asian", "afroamerican", "caucasian"]


def test_missing_kit_root_and_files_list_the_expected_names(kit: Path, tmp_path: Path) -> None:
    raises_one_line(
        DataError, lambda: load_kit_arrays(kit_config(tmp_path / "nowhere")),
        "does not exist", "data_train.npy", "labels_valid.npy", "meta_data_valid.npy", "optional: labels_test.npy",
    )
    (kit / "labels_valid.npy").unlink()
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "lacks labels_valid.npy", "expected")


def test_labels_without_meta_are_refused(kit: Path) -> None:
    np.save(kit / "labels_test.npy", np.array([20.0, 30.0, 40.0]))
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "labels_test.npy", "meta_data_test.npy")


def test_mismatched_lengths_name_the_counts(kit: Path) -> None:
    np.save(kit / "labels_train.npy", np.array([20.0, 30.0, 40.0, 50.0]))
    raises_one_line(
        DataError, lambda: load_kit_arrays(kit_config(kit)),
        "train split", "data_train.npy has 5", "meta_data_train.npy has 5", "labels_train.npy has 4",
    )


@pytest.mark.parametrize("shape", [(5, 8, 8), (5, 8, 8, 4)])
def test_wrong_image_shape_is_refused(kit: Path, shape: tuple[int, ...]) -> None:
    np.save(kit / "data_train.npy", np.zeros(shape, dtype=np.float32))
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "data_train.npy", str(shape), "(N, H, W, 3)")


def test_wrong_meta_shape_is_refused(kit: Path) -> None:
    np.save(kit / "meta_data_train.npy", np.array([["male", "asian"]] * 5))
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "meta_data_train.npy", "(5, 2)", "(N, 3)")


def test_unknown_meta_value_names_file_row_column_and_accepted(kit: Path) -> None:
    meta = np.array([RAW_META[i % 4] for i in range(5)])
    meta[2, 1] = "hispanic"
    np.save(kit / "meta_data_train.npy", meta)
    raises_one_line(
        DataError, lambda: load_kit_arrays(kit_config(kit)),
        "meta_data_train.npy row 2, column 1 (ethnicity)", "'hispanic'", "accepted: asian, afroamerican, caucasian",
    )


@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (-2.0, "-2"), (130.0, "130")])
def test_invalid_labels_name_file_index_and_value(kit: Path, value: float, shown: str) -> None:
    np.save(kit / "labels_valid.npy", np.array([20.0, value, 30.0, 40.0]))
    raises_one_line(
        DataError, lambda: load_kit_arrays(kit_config(kit)), "labels_valid.npy index 1", f": {shown} ", "0 to 120"
    )


def test_normalised_labels_are_refused(kit: Path) -> None:
    np.save(kit / "labels_valid.npy", np.array([0.2, 0.3, 0.4, 0.5]))
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "labels_valid.npy", "looks normalised")


def test_empty_split_is_refused(kit: Path) -> None:
    np.save(kit / "data_valid.npy", np.zeros((0, KIT_HW, KIT_HW, 3), dtype=np.float32))
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "data_valid.npy", "holds no images")


@pytest.mark.parametrize(("value", "shown"), [(300.0, "300"), (np.nan, "nan"), (-1.0, "-1")])
def test_pixels_outside_0_255_name_the_image_across_chunks(kit: Path, monkeypatch, value: float, shown: str) -> None:
    monkeypatch.setattr(kit_arrays, "CHUNK_IMAGES", 2)
    data = np.load(kit / "data_train.npy")
    data[3, 1, 2, 0] = value
    np.save(kit / "data_train.npy", data)
    raises_one_line(
        DataError, lambda: load_kit_arrays(kit_config(kit)), "data_train.npy image 3", f"value {shown},", "0 to 255"
    )


def test_images_scaled_to_unit_range_are_refused(kit: Path) -> None:
    np.save(kit / "data_test.npy", np.load(kit / "data_test.npy") / 255.0)
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "data_test.npy", "looks scaled to 0..1")


def test_a_file_that_is_not_npy_is_named(kit: Path) -> None:
    (kit / "data_valid.npy").write_bytes(b"PK\x03\x04 a zip, not an array")
    raises_one_line(DataError, lambda: load_kit_arrays(kit_config(kit)), "data_valid.npy", "not a readable .npy")


def test_unknown_channel_order_is_a_config_error(kit: Path) -> None:
    raises_one_line(ConfigError, lambda: load_kit_arrays(kit_config(kit, channel_order="gbr")), "'gbr'", "bgr, rgb")
