"""What a run computed with (facebias/environment.py), and the tags of a run's config-group choices
(facebias.identity.run_tags)."""

from __future__ import annotations

import os
import platform

import numpy
import pytest
from conftest import compose_train

from facebias.config import to_train_config
from facebias.environment import cpu_threads, environment_tags, package_version
from facebias.identity import ENVIRONMENT_TAGS, run_tags


def test_a_version_comes_from_the_imported_module_else_the_first_installed_distribution() -> None:
    assert package_version("numpy", ("no-such-distribution",)) == numpy.__version__  # imported: its __version__
    assert package_version("not_imported", ("no-such-distribution", "numpy")) == numpy.__version__  # metadata
    assert package_version("not_imported", ("no-such-distribution",)) == "none"


def test_cpu_threads_are_tensorflows_setting_else_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert cpu_threads() == 3
    usable = len(os.sched_getaffinity(0))
    for unset in ("0", "", "many"):  # 0 is TensorFlow's "choose": one per usable CPU
        monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", unset)
        assert cpu_threads() == usable
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert cpu_threads() == usable


def test_environment_tags_are_the_six_with_this_processs_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    tags = environment_tags()
    assert list(tags) == list(ENVIRONMENT_TAGS)
    assert (tags["facebias.version.python"], tags["facebias.version.numpy"], tags["facebias.cpu_threads"]) == (
        platform.python_version(), numpy.__version__, "2")


def test_a_group_left_unchosen_gets_no_tag() -> None:
    config = to_train_config(compose_train(["seed=4"]))
    tags = run_tags(config, {"experiment": None, "backbone": "small_cnn", "hydra/launcher": "basic"})
    assert tags == {"facebias.backbone": "small_cnn", "facebias.seed": "4"}
