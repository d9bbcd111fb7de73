"""A checkpoint that cannot be written (a full disk): the previous one stays valid, the run ends FAILED with one
sentence naming the folder, and `resume=auto` continues from the previous checkpoint once there is space again.

The fault is real as far as facebias can see it: the atomic write (facebias.io) has written part of the file when
the disk reports ENOSPC.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train, store_runs
from omegaconf import OmegaConf

import facebias.training.checkpoint as checkpoint_module
from facebias.config import to_train_config
from facebias.errors import StorageError
from facebias.run.start import train
from facebias.tracking.store import tracking_store
from facebias.training.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint


def _sentence(folder: Path) -> str:
    return (f"cannot write the checkpoint in {folder} (No space left on device): the previous checkpoint is kept; "
            "free space there, then rerun the same command with resume=auto to continue from it.")


def fill_the_disk_from(monkeypatch: pytest.MonkeyPatch, failing_write: int) -> None:
    """Make the `failing_write`-th checkpoint write (1-based) and every later one fail with ENOSPC mid-file."""
    real = checkpoint_module.atomic_file
    writes = {"count": 0}

    @contextmanager
    def atomic_file(path: Path) -> Iterator:
        writes["count"] += 1
        with real(path) as stream:
            if writes["count"] >= failing_write:
                stream.write(b"PK\x03\x04 half a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            yield stream

    monkeypatch.setattr(checkpoint_module, "atomic_file", atomic_file)


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = checkpoint_path(tmp_path)
    save_checkpoint(path, Checkpoint(stage=1, epoch=2, stage_epochs=[], seed=0, model_variables=[np.ones(3)]))
    fill_the_disk_from(monkeypatch, 1)
    with pytest.raises(StorageError) as caught:
        save_checkpoint(path, Checkpoint(stage=1, epoch=3, stage_epochs=[], seed=0, model_variables=[np.zeros(3)]))
    assert str(caught.value) == _sentence(path.parent)
    kept = load_checkpoint(path)
    assert kept is not None and kept.epoch == 2 and kept.model_variables[0].tolist() == [1, 1, 1]
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.npz"], "no half-written file is left"


@pytest.mark.slow
def test_a_run_whose_checkpoint_cannot_be_written_fails_and_resumes(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_train(["trainer=smoke", "data.n_train=120", "data.n_valid=48", "data.n_test=48",
                         "schedule=two_stage", "trainer.deterministic=true"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    output_dir = tmp_path / "out"
    fill_the_disk_from(monkeypatch, 2)
    config = to_train_config(cfg)
    with pytest.raises(StorageError) as caught:
        train(config, resolved=resolved, output_dir=output_dir, store=tracking_store(config.tracking, tmp_path),
              choices={})
    assert str(caught.value) == _sentence(output_dir / "checkpoint")
    _, runs = store_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].data.tags["error"] == _sentence(output_dir / "checkpoint"), "the sentence, without its type"
    kept = load_checkpoint(checkpoint_path(output_dir))
    assert kept is not None and (kept.stage, kept.epoch) == (1, 1), "the first epoch's checkpoint is kept"

    monkeypatch.undo()
    resumed = to_train_config(compose_train(["trainer=smoke", "data.n_train=120", "data.n_valid=48",
                                             "data.n_test=48", "schedule=two_stage", "trainer.deterministic=true",
                                             "resume=auto"]))
    result = train(resumed, resolved=resolved, output_dir=tmp_path / "elsewhere",
                   store=tracking_store(resumed.tracking, tmp_path), choices={})
    _, runs = store_runs(tmp_path)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(result.run_id, "FINISHED")]
    assert result.output_dir == output_dir
    assert not (output_dir / "checkpoint").exists()


def test_a_checkpoint_of_another_format_is_refused_with_a_warning(tmp_path: Path) -> None:
    """A checkpoint written by another facebias version is not resumed from, and the user is told why."""
    import json

    path = tmp_path / "checkpoint.npz"
    np.savez(path, state=np.array(json.dumps({"format": "facebias-checkpoint/0"})))
    with pytest.warns(UserWarning, match=r"format 'facebias-checkpoint/0' by another facebias version"):
        assert load_checkpoint(path) is None
