"""Prepared caches of real sources: validated before writing, byte-identical round trip, reused, and the card."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_facebias
from mlflow.tracking import MlflowClient
from test_real_data import appa_config, make_kit, make_release

from facebias.config import KitArraysDataConfig
from facebias.data import prepared
from facebias.data.appa_real import load_appa_real
from facebias.data.card import dataset_card, non_empty_groups
from facebias.data.kit_arrays import load_kit_arrays
from facebias.errors import DataError


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path / "appa-real-release")


def test_cache_round_trip_is_byte_identical_and_reused(release: Path, tmp_path: Path, monkeypatch) -> None:
    config = replace(appa_config(release), cache_dir=str(tmp_path / "cache"))
    direct = load_appa_real(config)
    messages: list[str] = []
    first = prepared.prepared_dataset(config, load_appa_real, messages.append)
    assert "preparing appa_real" in messages[0]
    for name, split in direct.splits.items():
        cached = first.splits[name]
        assert isinstance(cached.images, np.memmap), "prepared images are memory-mapped"
        assert cached.images.tobytes() == split.images.tobytes()
        assert cached.ages.tobytes() == split.ages.tobytes()
        assert cached.attributes[["gender", "ethnicity", "expression", "age_group"]].equals(
            split.attributes[["gender", "ethnicity", "expression", "age_group"]])
    assert first.digest() == direct.digest()

    def no_source(_config: object) -> None:
        raise AssertionError("the source was read again although its cache exists")

    messages.clear()
    again = prepared.prepared_dataset(config, no_source, messages.append)
    assert messages == [f"using the prepared cache of appa_real at {prepared.cache_folder(config)}"]
    assert again.digest() == direct.digest()


def test_a_changed_source_or_size_gets_a_new_cache(release: Path, tmp_path: Path) -> None:
    config = replace(appa_config(release), cache_dir=str(tmp_path / "cache"))
    before = prepared.cache_folder(config)
    assert prepared.cache_folder(replace(config, image_size=24)) != before
    (release / "train" / "000000.jpg_face.jpg").write_bytes((release / "train" / "000001.jpg_face.jpg").read_bytes())
    assert prepared.cache_folder(config) != before


def test_nothing_is_cached_from_a_source_that_failed_validation(release: Path, tmp_path: Path) -> None:
    (release / "valid" / "000005.jpg_face.jpg").unlink()
    config = replace(appa_config(release), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="000005"):
        prepared.prepared_dataset(config, load_appa_real, lambda message: None)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_kit_cache_keeps_the_unlabelled_test_split(tmp_path: Path) -> None:
    kit = make_kit(tmp_path / "kit")
    config = KitArraysDataConfig(root=str(kit), image_size=8, cache_dir=str(tmp_path / "cache"))
    dataset = prepared.prepared_dataset(config, load_kit_arrays, lambda message: None)
    assert np.isnan(dataset.test.ages).all()
    assert dataset.extras["unlabeled_splits"] == "test"
    assert not np.isnan(dataset.train.ages).any()


def test_card_counts_and_groups(release: Path) -> None:
    dataset = load_appa_real(appa_config(release))
    card = dataset_card(dataset)
    assert "images: train 4, valid 4, test 4" in card
    assert f"non-empty weighting groups in train: {non_empty_groups(dataset)} of 96" in card
    male_train = int((dataset.train.attributes["gender"] == "male").sum())
    assert f"| gender | male | {male_train} |" in card


def test_prepare_command_prints_the_card(release: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "facebias.data.prepare", "data=appa_real", f"data.root={release}",
               "data.image_size=16", f"data.cache_dir={tmp_path / 'cache'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "# Dataset card: appa_real" in result.stdout
    assert "preparing appa_real" in result.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "using the prepared cache of appa_real" in again.stdout
    missing = subprocess.run([*command[:4], f"data.root={tmp_path / 'nowhere'}"], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1


@pytest.mark.slow
def test_training_on_a_real_source_logs_the_dataset(release: Path, tmp_path: Path) -> None:
    result = run_facebias(tmp_path, "trainer=smoke", "data=appa_real", f"data.root={release}", "data.image_size=32",
                          f"data.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("facebias").experiment_id])
    contexts = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(contexts) == {"train", "valid", "test"}
    assert contexts["train"].digest == run.data.tags["facebias.dataset_digest"]
    assert "dataset_card.md" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert run.data.metrics["test/count_by_gender/male"] + run.data.metrics["test/count_by_gender/female"] == 4


def test_prepare_stops_when_it_cannot_write_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facebias.data.prepare import main as prepare_main

    (tmp_path / "taken").write_text("a file where the cache folder would go")
    status = prepare_main([f"data.cache_dir={tmp_path / 'taken'}", "data.n_train=40", "data.n_valid=20",
                           "data.n_test=20", "data.image_size=32"])
    assert status == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    cache = tmp_path / "taken" / "synthetic_v1_seed0_32px_40-20-20.npz"
    assert line.startswith(f"error: could not write the data cache {cache} (")
    assert line.endswith("): give data.cache_dir=<a folder you can write>, or free space there.")
