"""The embedded synthetic dataset: determinism, record shape, marginals, cache, progress, bias mechanism."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pandas as pd
import pytest

from facebias.data import synthetic
from facebias.data.dataset import Dataset, Split
from facebias.data.synthesis.people import MARGINAL_COUNTS, sample_attributes
from facebias.data.synthesis.render import render_faces
from facebias.data.synthetic import DESCRIPTION, cache_path, generate_split, load_synthetic
from facebias.errors import ConfigError
from facebias.progress import set_verbosity
from facebias.vocab import VOCABULARIES, age_groups

SMALL = {"n_train": 40, "n_valid": 20, "n_test": 30, "image_size": 40, "progress": False}


def _small(tmp_path, **overrides) -> Dataset:
    return load_synthetic(**{**SMALL, "cache_dir": tmp_path, **overrides})


def _equal_splits(first: Split, second: Split) -> bool:
    return (
        np.array_equal(first.images, second.images)
        and np.array_equal(first.ages, second.ages)
        and first.attributes.equals(second.attributes)
    )


# ---------------------------------------------------------------- determinism and the record


def test_same_seed_gives_identical_data_and_another_seed_differs():
    first = generate_split(60, 32, np.random.default_rng(7))
    again = generate_split(60, 32, np.random.default_rng(7))
    other = generate_split(60, 32, np.random.default_rng(8))
    assert _equal_splits(first, again)
    assert not np.array_equal(first.images, other.images)
    assert not np.array_equal(first.ages, other.ages)


def test_dataset_seed_changes_every_split(tmp_path):
    first, other = _small(tmp_path), _small(tmp_path, seed=1)
    for name in ("train", "valid", "test"):
        assert not np.array_equal(first.splits[name].images, other.splits[name].images)


def test_changing_one_split_size_leaves_the_other_splits_unchanged(tmp_path):
    first, longer_test = _small(tmp_path), _small(tmp_path, n_test=50)
    assert _equal_splits(first.train, longer_test.train)
    assert _equal_splits(first.valid, longer_test.valid)
    assert len(longer_test.test) == 50


def test_record_has_the_requested_sizes_dtypes_and_vocabularies(tmp_path):
    dataset = _small(tmp_path)
    assert dataset.name == "synthetic"
    assert dataset.description == DESCRIPTION
    assert dataset.image_size == (40, 40)
    for name, n in (("train", 40), ("valid", 20), ("test", 30)):
        split = dataset.splits[name]
        assert split.images.shape == (n, 40, 40, 3)
        assert split.images.dtype == np.uint8
        assert split.ages.dtype == np.float32
        assert np.all((split.ages >= 1) & (split.ages <= 100))
        for column, allowed in VOCABULARIES.items():
            assert set(split.attributes[column]) <= set(allowed)
        assert split.attributes["true_age"].between(3, 90).all()


def test_labels_are_the_true_age_plus_a_few_years_of_rater_noise():
    split = generate_split(500, 32, np.random.default_rng(3))
    error = split.ages - split.attributes["true_age"].to_numpy()
    assert 1.0 < np.std(error) < 4.0
    assert abs(np.mean(error)) < 0.5


# ---------------------------------------------------------------- marginals


@pytest.mark.parametrize("column", ["gender", "ethnicity", "expression"])
def test_attribute_proportions_follow_the_training_marginals(column):
    attributes = sample_attributes(4000, np.random.default_rng(0))
    counts = MARGINAL_COUNTS[column]
    observed = attributes[column].value_counts(normalize=True)
    for value, count in counts.items():
        assert observed.get(value, 0.0) == pytest.approx(count / sum(counts.values()), abs=0.025)


def test_age_groups_follow_the_training_marginals_and_are_all_present():
    split = generate_split(4000, 32, np.random.default_rng(0))
    counts = MARGINAL_COUNTS["age_group"]
    true_groups = pd.Series(age_groups(split.attributes["true_age"])).value_counts(normalize=True)
    label_groups = split.attributes["age_group"].value_counts(normalize=True)
    for group, count in counts.items():
        expected = count / sum(counts.values())
        assert true_groups[group] == pytest.approx(expected, abs=0.025)
        assert label_groups[group] == pytest.approx(expected, abs=0.04)


# ---------------------------------------------------------------- cache


def test_second_call_loads_from_the_cache_without_generating(tmp_path, monkeypatch, capsys):
    first = _small(tmp_path, progress=True)
    assert "saved synthetic data to cache" in capsys.readouterr().err

    def must_not_generate(*args, **kwargs):
        raise AssertionError("generate_split called although the data is cached")

    monkeypatch.setattr(synthetic, "generate_split", must_not_generate)
    cached = _small(tmp_path, progress=True)
    assert f"loaded synthetic data from cache {cache_path(tmp_path, 40, 20, 30, 40, 0)}" in capsys.readouterr().err
    assert cached.digest() == first.digest()
    assert cached.train.attributes.equals(first.train.attributes)


def test_cache_is_one_npz_of_plain_arrays_and_no_temporary_files(tmp_path):
    _small(tmp_path)
    path = cache_path(tmp_path, 40, 20, 30, 40, 0)
    assert sorted(tmp_path.iterdir()) == [path]
    with np.load(path, allow_pickle=False) as stored:
        assert stored["train_ethnicity"].dtype.kind == "U"
        assert stored["test_images"].shape == (30, 40, 40, 3)


def test_corrupt_cache_file_is_regenerated_with_a_warning(tmp_path):
    first = _small(tmp_path)
    path = cache_path(tmp_path, 40, 20, 30, 40, 0)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="unreadable"):
        regenerated = _small(tmp_path)
    assert regenerated.digest() == first.digest()
    assert _small(tmp_path).digest() == first.digest()


def test_failed_cache_write_leaves_no_file_and_still_returns_the_data(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(synthetic.np, "savez", disk_full)
    with pytest.warns(UserWarning, match="could not write"):
        dataset = _small(tmp_path)
    assert len(dataset.train) == 40
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", [{"n_train": 41}, {"n_valid": 21}, {"n_test": 31}, {"image_size": 48}, {"seed": 1}])
def test_every_generator_parameter_is_part_of_the_cache_key(tmp_path, change):
    base = {"n_train": 40, "n_valid": 20, "n_test": 30, "image_size": 40, "seed": 0}
    assert cache_path(tmp_path, **base) != cache_path(tmp_path, **{**base, **change})
    _small(tmp_path)
    _small(tmp_path, **change)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_generator_version_is_part_of_the_cache_key(tmp_path, monkeypatch):
    before = cache_path(tmp_path, 40, 20, 30, 40, 0)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert cache_path(tmp_path, 40, 20, 30, 40, 0) != before


def test_default_cache_folder_follows_facebias_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBIAS_CACHE", str(tmp_path))
    assert cache_path(None, 40, 20, 30, 40, 0).parent == tmp_path / "synthetic"


# ---------------------------------------------------------------- progress and errors


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def test_progress_bars_show_on_a_terminal_only_when_asked(tmp_path, capsys, monkeypatch):
    _small(tmp_path / "quiet")
    assert capsys.readouterr().err == ""
    _small(tmp_path / "not-a-terminal", progress=True)
    assert "generating" not in capsys.readouterr().err, "no bar when stderr is not a terminal"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _small(tmp_path / "terminal", progress=True)
    shown = terminal.getvalue()
    for split, count in (("train", 40), ("valid", 20), ("test", 30)):
        assert re.search(rf"generating synthetic {split} split: 100%\|[^\r]*\| {count}/{count} ", shown), shown
    set_verbosity(0)
    try:
        terminal.seek(0)
        terminal.truncate()
        _small(tmp_path / "verbose-0", progress=True)
        assert "generating" not in terminal.getvalue(), "trainer.verbose=0 silences the bars"
    finally:
        set_verbosity("auto")


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("n_train", 0), ("n_valid", -1), ("n_test", 2.5), ("image_size", 16), ("image_size", 5000), ("seed", -1)],
)
def test_bad_parameters_raise_a_config_error_naming_the_parameter(tmp_path, parameter, value):
    with pytest.raises(ConfigError, match=rf"^data\.{parameter}={value!r} is invalid: use a whole number (>=|between)"):
        _small(tmp_path, **{parameter: value})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("n", "image_size", "parameter"), [(0, 64, "n=0"), (10, 31, "data.image_size=31")])
def test_generate_split_rejects_bad_parameters(n, image_size, parameter):
    with pytest.raises(ConfigError, match=rf"^{parameter} is invalid"):
        generate_split(n, image_size, np.random.default_rng(0))


# ---------------------------------------------------------------- the bias mechanism
# "Twins": the same people (same seed, same draws) rendered at another age or with another expression, so
# that the difference of the two images is what age (or the expression) changed and nothing else.


def _cheek_luminance(ethnicity: str, expression: str, age: float, n: int = 120, size: int = 64) -> np.ndarray:
    """Luminance of the region below and beside the eyes (under-eye lines, crow's feet, nasolabial folds)."""
    genders = np.random.default_rng(0).choice(["male", "female"], n)
    people = pd.DataFrame({"gender": genders, "ethnicity": ethnicity, "expression": expression, "true_age": age})
    luminance = render_faces(people, size, np.random.default_rng(0)).astype(float).mean(axis=-1)

    def pixels(low: float, high: float) -> slice:
        return slice(round((low + 1) / 2 * size), round((high + 1) / 2 * size))

    rows = pixels(0.0, 0.16)
    return np.concatenate([luminance[:, rows, pixels(-0.31, -0.13)], luminance[:, rows, pixels(0.13, 0.31)]], axis=2)


def _age_change(ethnicity: str, age: float, young: float = 25.0) -> float:
    """Mean absolute grey-level change of the cheek region when the same people are `age` instead of `young`."""
    old = _cheek_luminance(ethnicity, "neutral", age)
    return float(np.abs(old - _cheek_luminance(ethnicity, "neutral", young)).mean())


def test_age_lines_are_less_visible_on_darker_skin():
    change = {ethnicity: _age_change(ethnicity, 60.0) for ethnicity in ("caucasian", "asian", "afroamerican")}
    assert change["caucasian"] > change["asian"] > change["afroamerican"]
    assert change["caucasian"] > 2 * change["afroamerican"]
    assert _age_change("caucasian", 75.0) > change["caucasian"] > _age_change("caucasian", 40.0)


def test_age_lines_start_later_on_darker_skin_beyond_the_lower_contrast():
    """Relative to skin brightness (which removes the multiplicative-contrast effect) the onset still differs."""
    relative = {
        ethnicity: _age_change(ethnicity, 42.0) / _cheek_luminance(ethnicity, "neutral", 25.0).mean()
        for ethnicity in ("caucasian", "afroamerican")
    }
    assert relative["caucasian"] > 2 * relative["afroamerican"]


def test_smiling_darkens_the_wrinkle_region_like_years_of_ageing():
    young_neutral = _cheek_luminance("caucasian", "neutral", 22.0)
    smile_darkening = float((young_neutral - _cheek_luminance("caucasian", "happy", 22.0)).mean())
    ageing_darkening = float((young_neutral - _cheek_luminance("caucasian", "neutral", 36.0)).mean())
    assert smile_darkening > ageing_darkening > 0
