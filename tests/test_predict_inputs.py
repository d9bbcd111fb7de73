"""`python -m facebias.predict`'s inputs: a path that cannot be read is one sentence, said before any model is read
(the model named here does not exist, so a later check would report the model instead); a store that does not
exist is not created."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebias.data.inputs import read_attributes, read_images
from facebias.errors import DataError
from facebias.predict import main as predict_main

MISSING_MODEL = "models:/m-00000000000000000000000000000000"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with one .npy of two 8x8 images, a folder of no images, and a file of bytes that are no CSV."""
    np.save(tmp_path / "faces.npy", np.zeros((2, 8, 8, 3), dtype=np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "noise.csv").write_bytes(bytes(range(256)))
    return tmp_path


@pytest.mark.parametrize(("arguments", "sentence"), [
    (["images={f}/nowhere"], "images={f}/nowhere is neither a folder of images nor a .npy file."),
    (["images={f}/noise.csv"], "images={f}/noise.csv is neither a folder of images nor a .npy file."),
    (["images={f}/faces.npy", "attributes={f}/nowhere.csv"],
     "attributes={f}/nowhere.csv is not a file: give the CSV of the images' attributes (columns apparent_age, gender, "
     "ethnicity, expression, and file naming each image of a folder)."),
    (["images={f}/faces.npy", "attributes={f}/empty"],
     "attributes={f}/empty is not a file: give the CSV of the images' attributes (columns apparent_age, gender, "
     "ethnicity, expression, and file naming each image of a folder)."),
    (["images={f}/faces.npy", "output={f}/empty"],
     "output={f}/empty is a folder: give the CSV file to write, e.g. output={f}/empty/predictions.csv."),
], ids=["missing-images", "not-images", "missing-attributes", "attributes-folder", "output-folder"])
def test_a_path_that_cannot_be_read_or_written_is_refused_before_the_model(
        folder: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], sentence: str) -> None:
    argv = [f"model={MISSING_MODEL}", f"tracking.uri=sqlite:///{folder / 'store.db'}",
            *(argument.format(f=folder) for argument in arguments)]
    assert predict_main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {sentence.format(f=folder)}"]
    assert not list(folder.glob("*predictions*.csv")), "nothing written"


def test_attributes_that_are_no_csv_and_a_folder_without_images_are_one_sentence(folder: Path) -> None:
    with pytest.raises(DataError, match=r"^attributes=.*noise\.csv cannot be read as a CSV file \(.+\)\.$"):
        read_attributes(folder / "noise.csv", ["0", "1"], from_folder=False)
    with pytest.raises(DataError, match=r"^images=.*empty holds no image file \(\.jpg, "):
        read_images(folder / "empty", (8, 8))


def test_a_model_read_from_a_store_that_does_not_exist_creates_none(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert predict_main([f"model={MISSING_MODEL}", f"images={folder / 'faces.npy'}"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: no MLflow store at sqlite:///{folder}/mlruns/mlflow.db: run the command where the runs were "
        "recorded, or name their store with tracking.uri=sqlite:///….db (or any other store URI)."]
    assert not (folder / "mlruns").exists()
