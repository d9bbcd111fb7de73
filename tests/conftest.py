"""Shared fixtures: Hydra composition of conf/train.yaml, and an isolated cache and MLflow environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from team_server import TeamServer, cannot_run_daemons, start_team_server

from facebias.config import register_configs
from facebias.startup import loading_tensorflow

with loading_tensorflow():  # as facebias imports them: quiet, and without the scikit-learn Keras would load (~0.7 s)
    import tensorflow  # noqa: F401  (the test modules import it at collection anyway)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"

register_configs()


def compose_train(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/train.yaml the way `python -m facebias.train` does."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [])


ONE_THREAD_PER_POOL = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
"""TensorFlow's thread pools in the test processes and every process they start: the suite runs several processes
per core, and TensorFlow's default of one thread per core in each pool only adds contention (a single run took
about 10 % less CPU with these, measured)."""


@pytest.fixture(autouse=True, scope="session")
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the user's cache and MLflow settings out of every test; share one data cache per session; one thread
    per TensorFlow pool (`ONE_THREAD_PER_POOL`)."""
    saved = {key: os.environ.get(key) for key in ("FACEBIAS_CACHE", "MLFLOW_TRACKING_URI", *ONE_THREAD_PER_POOL)}
    os.environ["FACEBIAS_CACHE"] = str(tmp_path_factory.getbasetemp() / "facebias-cache")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update(ONE_THREAD_PER_POOL)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


MAX_WORKERS = 6
"""Every worker imports TensorFlow and starts training processes of its own: more would mostly add memory."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one pytest-xdist worker more than there are cores (at most `MAX_WORKERS`): many tests wait on a
    server, a Slurm job or a subprocess starting, and the extra worker keeps the cores busy meanwhile."""
    return min((os.cpu_count() or 1) + 1, MAX_WORKERS)


SHARED_SERVICES = {"quick_grid_store": "quick_grid", "team_server": "team_server"}
"""Session fixtures that are costly to start → their xdist group: the tests that use one are kept on one worker,
which starts it once."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist (`--dist loadgroup`, set in pyproject.toml): every test that reads the quick
    grid runs on the one worker that ran it, every test of the team server on the one worker that started it, the
    tests of a module on one worker (so that its module fixtures start once), and the groups holding the most slow
    tests start first, so that no long one is left for the end.
    First among the hooks: xdist reads the groups in its own hook."""
    groups = {item: next((group for fixture, group in SHARED_SERVICES.items() if fixture in item.fixturenames),
                         item.nodeid.split("::")[0]) for item in items}
    slow = {group: 0 for group in groups.values()}
    first = {}
    for position, item in enumerate(items):
        slow[groups[item]] += item.get_closest_marker("slow") is not None
        first.setdefault(groups[item], position)
        item.add_marker(pytest.mark.xdist_group(groups[item]))
    items.sort(key=lambda item: (-slow[groups[item]], first[groups[item]]))


QUICK_DATA = ["data.n_train=240", "data.n_valid=96", "data.n_test=96"]
"""Small synthetic splits for sweeps in tests."""
QUICK_GRID_TRAINER = ["trainer=smoke", "trainer.max_epochs_cap=1", "trainer.max_train_batches=1",
                      "trainer.max_eval_samples=32"]
"""Quick mode cut to one epoch of one batch per stage, evaluated on 32 images per split instead of 64 (each
attribute still has two groups or more on the synthetic splits; InceptionResNetV2's evaluations dominate its quick
jobs: 16 instead of 64 took its three-stage job from 42 s to 34 s of CPU, measured): the grid's tests are about the
sweep, its records and its report (training, curves and resuming are tested on runs of their own)."""


NO_MODEL = "tracking.log_model=false"
"""For runs whose test reads no model: saving and logging it cost 0.59 s of CPU per quick run
(benchmarks/model_logging.py, docs/performance.md)."""


def run_facebias(cwd: Path, *args: str, timeout: float = 900, python_options: tuple[str, ...] = ()
                 ) -> subprocess.CompletedProcess:
    """Run `python [PYTHON_OPTIONS] -m facebias.train ARGS` in `cwd`, as a user would, and return the finished
    process (`python_options=("-X", "importtime")` lists its imports on stderr: see `imported_packages`)."""
    return subprocess.run(
        [sys.executable, *python_options, "-m", "facebias.train", *args], cwd=cwd, capture_output=True, text=True,
        env=os.environ.copy(), timeout=timeout,
    )


IMPORTTIME = ("-X", "importtime")
"""Python options that make a process list every module it imports on stderr (see `imported_packages`)."""
TENSORFLOW = {"tensorflow", "keras"}
"""The packages whose import `imported_packages` shows when a process loaded TensorFlow."""


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules a `python -X importtime` process imported, read from its stderr (an import that failed, such as
    one `facebias.startup` blocks, is listed too, but none of its submodules)."""
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def imported_packages(importtime_stderr: str) -> set[str]:
    """The top-level packages a `python -X importtime` process imported, read from its stderr."""
    return {module.split(".")[0] for module in imported_modules(importtime_stderr)}


def loaded_sklearn(importtime_stderr: str) -> bool:
    """Whether a `python -X importtime` process loaded scikit-learn (a submodule of it was imported)."""
    return any(module.startswith("sklearn.") for module in imported_modules(importtime_stderr))


def last_message(stderr: str) -> str:
    """The last line a process wrote to stderr, not counting `python -X importtime`'s lines."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("import time:")][-1]


QUICK_GRID_LAUNCHER = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.max_batch_size=8"]
"""The grid's 8 jobs on joblib's reused worker processes, two at a time, so that TensorFlow and MLflow are imported
a few times, not 8 (on a CPU a job may inherit its worker's state; the grid's own `local_processes` launcher, a fresh
process per job, runs in tests/tracking/test_tracking_server.py)."""


@pytest.fixture(scope="session")
def quick_grid_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder in which the quick 8-experiment grid sweep has run: its store is <folder>/mlruns/mlflow.db."""
    cwd = tmp_path_factory.mktemp("quick-grid")
    result = run_facebias(cwd, "+sweep=paper_grid_quick", *QUICK_GRID_TRAINER, *QUICK_DATA, *QUICK_GRID_LAUNCHER)
    (cwd / "sweep.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        pytest.fail(f"the quick grid sweep failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return cwd


def store_runs(cwd: Path) -> tuple[MlflowClient, list]:
    """A client on <cwd>/mlruns/mlflow.db and the runs of experiment "facebias", oldest first."""
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("facebias")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def kill_at(command: list[str], cwd: Path, marker: Callable[[str], bool], count: int = 1) -> None:
    """Start `command` in `cwd` and SIGKILL it as soon as it has printed its `count`-th line that `marker` accepts."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        seen = 0
        for line in process.stdout:
            seen += marker(line)
            if seen == count:
                break
        else:
            pytest.fail(f"{' '.join(command[1:])} ended before printing the marker line {count} time(s)")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
        process.stdout.close()


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    """scripts/team_server.sh on a free port, with its own state folder and PostgreSQL database (tests/team_server.py);
    skipped on a machine that cannot run PostgreSQL (not root, or not Debian)."""
    reason = cannot_run_daemons()
    if reason:
        pytest.skip(reason)
    with start_team_server(tmp_path_factory.mktemp("team-server")) as server:
        yield server
