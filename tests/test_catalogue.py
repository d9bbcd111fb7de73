"""The catalogue of bad input: every case ends in its exact one-sentence message, and no MLflow run is RUNNING.

Overrides Hydra cannot compose exit with status 2, config values with status 1, both before anything is loaded and
before the MLflow store exists; data, weights and tracking failures end their run FAILED (or never start one).
docs/user-guide/troubleshooting.md lists the same messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import compose_train
from hydra.errors import HydraException
from hydra.main import _get_rerun_conf
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from facebias.config import to_train_config
from facebias.errors import ConfigError, DataError, FacebiasError, TrackingError, WeightsError
from facebias.overrides import explain, hydra_refusal
from facebias.run.start import train
from facebias.shutdown import as_process
from facebias.tracking.store import tracking_store

ACCEPTED_TRACKING = ("accepted: sqlite:///….db, postgresql://…, mysql://…, mssql://…, http(s)://… (a tracking "
                     "server) or databricks, or null for sqlite:///<tracking.store_dir>/mlflow.db.")
FOLDER_STORE = ("is a folder store, which MLflow 3 opens only with MLFLOW_ALLOW_FILE_STORE=true: give "
                "sqlite:///<folder>/mlflow.db instead (`mlflow migrate-filestore` copies an old folder store's runs "
                "into one).")

CONFIG_CASES = [
    (["schedule.stages.0.lr=-1e-4"],
     "schedule.stages.0.lr=-0.0001 is invalid (stage 1): the learning rate must be > 0 (e.g. 1e-4)."),
    (["schedule.stages.0.trainable=neck"],
     "schedule.stages.0.trainable='neck' is unknown (stage 1); accepted: all, head, backbone."),
    (["schedule.stages.0.batch_size=0"],
     "schedule.stages.0.batch_size=0 is invalid (stage 1): use a whole number >= 1."),
    (["schedule.stages=[]"], "schedule 'from_scratch' has no stages: give schedule.stages at least one stage "
                             "(trainable, lr, max_epochs, patience, batch_size)."),
    (["trainer.precision=float8"], "trainer.precision='float8' is unknown; accepted: float32, mixed_float16, "
                                   "mixed_bfloat16."),
    (["data=appa_real"], "data.root is required but not set: add data.root=… to the command line."),
    (["augmentation.crop_fraction=0.7"], "augmentation.crop_fraction=0.7 is invalid: use a fraction in [0, 0.5) of "
                                         "the image side."),
    (["backbone.weights=/x/vggface2.h5"], "backbone.weights=/x/vggface2.h5 is invalid: small_cnn trains from scratch "
     "and takes no pretrained weights; accepted: null (or choose a pretrained backbone: resnet50, "
     "inception_resnet_v2)."),
    (["data.n_train=0"], "data.n_train=0 is invalid: use a whole number >= 1."),
    (["data.n_valid=-3"], "data.n_valid=-3 is invalid: use a whole number >= 1."),
    (["data.n_test=0"], "data.n_test=0 is invalid: use a whole number >= 1."),
    (["data.image_size=16"], "data.image_size=16 is invalid: use a whole number between 32 and 1024."),
    (["data.seed=-1"], "data.seed=-1 is invalid: use a whole number >= 0."),
    (["data.name=nope"], "data.name='nope' is unknown; accepted: synthetic, appa_real, kit_arrays."),
    (["data.name=appa_real"], "data.name='appa_real' does not match the chosen data source 'synthetic': choose the "
                              "source with data=appa_real, not data.name=…."),
    (["data=appa_real", "data.root=/r", "data.on_bad_image=ignore"],
     "data.on_bad_image='ignore' is unknown; accepted: fail, skip."),
    (["data=appa_real", "data.root=/r", "data.image_size=0"], "data.image_size=0 is invalid: use a whole number >= 1."),
    (["data=kit_arrays", "data.root=/r", "data.channel_order=rbg"],
     "data.channel_order='rbg' is unknown; accepted: bgr, rgb."),
    (["data=kit_arrays", "data.root=/r", "data.image_size=-5"],
     "data.image_size=-5 is invalid: use a whole number >= 1."),
    (["tracking.uri=ftp://x"], f"tracking.uri='ftp://x' is not a store MLflow can track to; {ACCEPTED_TRACKING}"),
    (["tracking.uri=/data/runs"], f"tracking.uri='/data/runs' {FOLDER_STORE}"),
    (["tracking.uri=file:///data/runs"], f"tracking.uri='file:///data/runs' {FOLDER_STORE}"),
    (["tracking.log_model=false", "tracking.register_as=age"], "tracking.register_as=age needs the run's model, "
     "which tracking.log_model=false does not save: set tracking.log_model=true or tracking.register_as=null."),
    (["+foo=1"], "foo: no such key; the config has: seed, description, pretrained, sweep_name, data, backbone, head, "
                 "schedule, weighting, sampling, calibration, tracking, trainer, augmentation, statistics, resume."),
]

COMPOSITION_CASES = [
    (["backbone=nope"], "backbone=nope: no such option; available: inception_resnet_v2, resnet50, small_cnn."),
    (["data=nope"], "data=nope: no such option; available: appa_real, kit_arrays, synthetic."),
    (["seed=abc"], "seed=abc: not a whole number."),
    (["weighting.attributes=gender"], "weighting.attributes=gender: not a list; write it as [a, b]."),
    (["schedule.stages.0.lr=fast"], "schedule.stages.0.lr=fast: not a number."),
    (["trainer.deterministic=maybe"], "trainer.deterministic=maybe: not true or false."),
    (["head.hidden_units=[a]"], "head.hidden_units=[a]: not a whole number."),
    (["backbone.nope=1"], "backbone.nope: no such key; backbone has: name, input_size, preprocessing, weights, "
                          "widths."),
    (["schedule.stages.5.lr=1"], "schedule.stages.5.lr=1: no such stage; schedule 'from_scratch' has 1 stage "
     "(schedule.stages.0): choose a schedule with more stages (schedule=…, listed by --help) or give every stage with "
     "schedule.stages=[…]."),
    (["backbone"], "backbone: cannot be read as an override (missing EQUAL at '<EOF>'); write key=value or "
                   "group=option, e.g. backbone=resnet50 (see --help)."),
]

MISSING_DATA_ROOT = {
    "appa_real": "the APPA-REAL folder /nowhere/appa does not exist; set data.root to the unpacked release (the "
                 "folder holding train/, valid/, test/ and gt_avg_*.csv).",
    "kit_arrays": "the starting-kit folder /nowhere/kit does not exist; set data.root to the folder: expected "
                  "data_train.npy, data_valid.npy, data_test.npy, labels_train.npy, labels_valid.npy, "
                  "meta_data_train.npy, meta_data_valid.npy (optional: labels_test.npy, meta_data_test.npy).",
}

CLI_CASES = [(overrides, 2, message) for overrides, message in COMPOSITION_CASES] + [
    (overrides, 2 if overrides[0].startswith("+") else 1, message) for overrides, message in CONFIG_CASES
    if overrides[0] in ("backbone.weights=/x/vggface2.h5", "data.n_train=0", "tracking.uri=ftp://x", "+foo=1")
] + [
    (["data=appa_real", "data.root=/nowhere/appa"], 1, MISSING_DATA_ROOT["appa_real"]),
    (["data=kit_arrays", "data.root=/nowhere/kit"], 1, MISSING_DATA_ROOT["kit_arrays"]),
    (["-m", "seed=0,1", "--cfg", "job"], 2,
     "Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified."),
    (["--resolve"], 2, "The --resolve flag can only be used in conjunction with --cfg or --help."),
    (["--shell-completion"], 2, "Expecting one subcommand from ['install', 'uninstall', 'query'] to be set."),
    (["-m", "experiment=glob(nomatch*)"], 1, "the sweep has no job: a list of its overrides is empty or matches "
     "nothing (e.g. experiment=glob(…) that names no experiment; --help lists the options)."),
    (["-m", "seed=0,1", "hydra.sweeper.max_batch_size=0"], 1, "hydra.sweeper.max_batch_size=0 is invalid: use a "
     "whole number >= 1 (jobs launched at a time), or null for all at once."),
]
"""Run as a user runs them: `python -m facebias.train …`, in a fresh folder (a key the schema does not know is a
usage error, exit status 2, as a misspelt one is; a data folder that does not exist is refused before the tracking
store is created)."""

RUN_CASES = [
    (["backbone=resnet50", "backbone.weights=/nowhere/vggface2.h5"], WeightsError,
     "VGGFace2 ResNet50 weights file /nowhere/vggface2.h5 does not exist: the VGGFace2 ResNet50 Keras weights (e.g. "
     "the starting kit's / keras-vggface rcmalli_vggface_tf_notop_resnet50.h5) must be downloaded by you and passed "
     "as backbone.weights=/path/to/file.h5, or set backbone.weights=null to train from random initialisation."),
    (["backbone=inception_resnet_v2"], WeightsError,
     "InceptionResNetV2 ImageNet weights are not cached at {keras_home}/models/inception_resnet_v2_weights_tf_dim_"
     "ordering_tf_kernels_notop.h5 and this run does not download them (offline): run `python -c \"import keras; "
     "keras.applications.InceptionResNetV2(include_top=False)\"` once on a machine with internet (same KERAS_HOME) "
     "or copy the file there, or set backbone.weights=null to train from scratch."),
    (["data=appa_real", "data.root=/nowhere/appa"], DataError, MISSING_DATA_ROOT["appa_real"]),
    (["data=kit_arrays", "data.root=/nowhere/kit"], DataError, MISSING_DATA_ROOT["kit_arrays"]),
    (["data=appa_real", "data.root=/dev/null"], DataError,
     MISSING_DATA_ROOT["appa_real"].replace("/nowhere/appa does not exist", "/dev/null is a file, not a folder")),
    (["backbone=resnet50", "backbone.weights=/"], WeightsError,
     "VGGFace2 ResNet50 weights file / is a folder, not a file: the VGGFace2 ResNet50 Keras weights (e.g. the "
     "starting kit's / keras-vggface rcmalli_vggface_tf_notop_resnet50.h5) must be downloaded by you and passed as "
     "backbone.weights=/path/to/file.h5, or set backbone.weights=null to train from random initialisation."),
    (["tracking.uri=http://127.0.0.1:9"], TrackingError,
     "cannot reach the MLflow tracking server at http://127.0.0.1:9 (connection refused): start it, or point "
     "tracking.uri (or MLFLOW_TRACKING_URI) at a running server."),
    (["tracking.uri=postgresql://alice@127.0.0.1:9/facebias"], TrackingError,
     "cannot connect to the database of the MLflow tracking store postgresql://alice@127.0.0.1:9/facebias (connection "
     'failed: connection to server at "127.0.0.1", port 9 failed: Connection refused): start it, check the user and '
     "database, or point tracking.uri at one that runs."),
]

SWEEP_CASES = [
    (["backbone=nope,small_cnn"], 2,
     "backbone=nope: no such option; available: inception_resnet_v2, resnet50, small_cnn."),
    (["+search=fair_pareto", "hydra.sweeper.n_trials=0"], 1, "hydra.sweeper.n_trials=0: give a whole number of at "
                                                            "least 1."),
    (["+search=fair_pareto", "hydra.sweeper.storage=nope://x/y"], 1,
     "the sweep stopped: Can't load plugin: sqlalchemy.dialects:nope (NoSuchModuleError in sqlalchemy)."),
]
"""A sweep (-m) whose job Hydra cannot compose, whose sweeper refuses a setting, or whose sweeper or launcher cannot
start its jobs: it stops there, its parent run FAILED with the sentence."""


def _statuses(store: Path) -> list[str]:
    if not store.exists():
        return []
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("facebias")
    return [] if experiment is None else [r.info.status for r in client.search_runs([experiment.experiment_id])]


@pytest.mark.parametrize(("overrides", "message"), CONFIG_CASES)
def test_bad_config_values(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        to_train_config(compose_train(overrides))
    assert str(caught.value) == message


@pytest.mark.parametrize(("overrides", "message"), COMPOSITION_CASES)
def test_bad_overrides(overrides: list[str], message: str) -> None:
    with pytest.raises(HydraException) as caught:
        compose_train(overrides)
    assert explain(caught.value) == message


@pytest.mark.parametrize(("overrides", "status", "message"), CLI_CASES, ids=lambda case: str(case))
def test_the_command_line_says_one_sentence_before_anything_loads(tmp_path: Path, overrides: list[str], status: int,
                                                                    message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "facebias.train", *overrides], cwd=tmp_path, capture_output=True,
                            text=True, env=os.environ.copy(), timeout=120)
    assert result.returncode == status
    assert result.stderr.strip().splitlines() == [f"error: {message}"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlruns").exists(), "the MLflow store is not even created"


@pytest.mark.parametrize(("in_the_way", "overrides", "message"), [
    ("taken", ["hydra.run.dir=taken"], "Hydra cannot write its output folder taken: File exists; run the command in a "
     "folder you can write, or set hydra.run.dir=… (hydra.sweep.dir=… for a sweep)."),
    ("mlruns", [], "cannot create the folder of the default MLflow store {folder}/mlruns: File exists; set "
     "tracking.store_dir=… to a folder you can write, or point tracking.uri at a store."),
], ids=["output-folder", "store-folder"])
def test_a_file_where_a_folder_goes_is_one_sentence(tmp_path: Path, in_the_way: str, overrides: list[str],
                                                    message: str) -> None:
    (tmp_path / in_the_way).write_text("a file where a folder would go")
    result = subprocess.run([sys.executable, "-m", "facebias.train", "trainer=smoke", *overrides], cwd=tmp_path,
                            capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {message.format(folder=tmp_path)}"]
    assert not (tmp_path / "mlruns").is_dir(), "no store, no run"


def _rerun_of_a_missing_file() -> None:
    """What Hydra runs for `--experimental-rerun nowhere.pickle`: a ValueError raised in Hydra's code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Hydra's "Experimental rerun CLI option" warning
        _get_rerun_conf("nowhere.pickle", [])


def test_hydras_refusal_is_a_value_error_from_hydra_that_passed_through_no_facebias_code() -> None:
    with pytest.raises(ValueError) as refused:
        _rerun_of_a_missing_file()
    assert hydra_refusal(refused.value) == "File nowhere.pickle does not exist."
    with pytest.raises(ValueError) as elsewhere:
        int("x")
    assert hydra_refusal(elsewhere.value) is None
    with pytest.raises(ValueError) as through_facebias:
        as_process(_rerun_of_a_missing_file)()
    assert hydra_refusal(through_facebias.value) is None


@pytest.mark.parametrize(("overrides", "error", "message"), RUN_CASES)
def test_bad_data_weights_and_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str],
                                       error: type[FacebiasError], message: str) -> None:
    (tmp_path / "keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cfg = compose_train(["trainer=smoke", *overrides])
    config = to_train_config(cfg)
    with pytest.raises(error) as caught:
        train(config, resolved=OmegaConf.to_container(cfg, resolve=True), output_dir=tmp_path / "out",
              store=tracking_store(config.tracking, tmp_path), choices={})
    assert str(caught.value) == message.format(keras_home=tmp_path / "keras")
    statuses = _statuses(tmp_path / "mlruns" / "mlflow.db")
    assert "RUNNING" not in statuses
    if error is not TrackingError:
        assert statuses == ["FAILED"], "a run that started must end FAILED with its error"


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "status", "message"), SWEEP_CASES)
def test_a_sweep_stopped_by_a_bad_option_ends_its_parent_failed(tmp_path: Path, overrides: list[str], status: int,
                                                                message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "facebias.train", "-m", "trainer=smoke", *overrides], cwd=tmp_path,
                            capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert result.returncode == status
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in result.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("facebias").experiment_id])
    assert parent.data.tags["facebias.role"] == "sweep", "no job started"
    assert (parent.info.status, parent.data.tags["error"]) == ("FAILED", message)


def test_catalogue_size() -> None:
    assert len(CONFIG_CASES) + len(COMPOSITION_CASES) + len(RUN_CASES) + len(SWEEP_CASES) == 45
