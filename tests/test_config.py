"""Every config option composes into the schema, and every bad value fails with one clear sentence."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import CONF_DIR, compose_train

from facebias.config import TrainConfig, to_train_config
from facebias.errors import ConfigError


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


GROUPS = ("data", "backbone", "head", "schedule", "weighting", "sampling", "calibration", "tracking", "trainer")


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes_and_validates(group: str) -> None:
    options = _options(group)
    assert options, f"conf/{group}/ has no option"
    for option in options:
        overrides = [f"{group}={option}"]
        if group == "data" and option != "synthetic":
            overrides.append("data.root=/data/somewhere")
        config = to_train_config(compose_train(overrides))
        assert isinstance(config, TrainConfig)


def test_an_empty_crop_suffix_picks_the_whole_images() -> None:
    config = to_train_config(compose_train(["data=appa_real", "data.root=/r", "data.crop_suffix="]))
    assert config.data.crop_suffix == ""


def test_a_folder_store_is_accepted_where_mlflow_is_told_to_open_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert to_train_config(compose_train(["tracking.uri=/data/runs"])).tracking.uri == "/data/runs"


def test_model_and_schedule_combinations_compose() -> None:
    for backbone, head, schedule in itertools.product(_options("backbone"), _options("head"), _options("schedule")):
        config = to_train_config(compose_train([f"backbone={backbone}", f"head={head}", f"schedule={schedule}"]))
        assert (config.backbone.name, config.head.name, config.schedule.name) == (backbone, head, schedule)


def test_schedules_are_the_studys() -> None:
    expected = {
        "one_stage": [("all", 1e-5)],
        "two_stage": [("head", 1e-4), ("all", 1e-5)],
        "three_stage": [("head", 1e-4), ("backbone", 1e-5), ("all", 1e-5)],
    }
    for name, stages in expected.items():
        config = to_train_config(compose_train([f"schedule={name}"]))
        assert [(s.trainable, s.lr) for s in config.schedule.stages] == stages
        assert all((s.max_epochs, s.patience, s.batch_size) == (50, 5, 32) for s in config.schedule.stages)


def test_heads_are_the_studys() -> None:
    linear = to_train_config(compose_train(["head=linear"])).head
    mlp = to_train_config(compose_train(["head=mlp"])).head
    assert (linear.dropout, linear.hidden_units) == (0.0, [])
    assert (mlp.dropout, mlp.hidden_units) == (0.5, [128, 32])


BAD_VALUES = [
    (["schedule.stages.0.lr=-0.001"],
     "schedule.stages.0.lr=-0.001 is invalid (stage 1): the learning rate must be > 0"),
    (["schedule.stages.0.lr=0"], "schedule.stages.0.lr=0.0 is invalid (stage 1)"),
    (["schedule=two_stage", "schedule.stages.1.trainable=neck"],
     "schedule.stages.1.trainable='neck' is unknown (stage 2)"),
    (["schedule.stages.0.batch_size=0"],
     "schedule.stages.0.batch_size=0 is invalid (stage 1): use a whole number >= 1"),
    (["schedule.stages.0.max_epochs=0"], "schedule.stages.0.max_epochs=0 is invalid (stage 1)"),
    (["schedule.stages.0.patience=-1"], "schedule.stages.0.patience=-1 is invalid (stage 1)"),
    (["schedule.stages=[]"], "schedule 'from_scratch' has no stages"),
    (["head.dropout=1.5"], "head.dropout=1.5 is invalid"),
    (["backbone.input_size=16"], "backbone.input_size=16 is too small"),
    (["backbone.preprocessing=zscore"], "backbone.preprocessing='zscore' is unknown"),
    (["weighting.name=inverse"], "weighting.name='inverse' is unknown"),
    (["weighting.attributes=[gender,gender]"], "weighting.attributes=['gender', 'gender'] is invalid: use a non-empty "
     "list of distinct attributes from gender, ethnicity, age_group, expression."),
    (["weighting=group_dro", "weighting.dro_step_size=0"], "weighting.dro_step_size=0.0 is invalid"),
    (["weighting=group_dro", "trainer.distribute=mirrored"], "trainer.distribute=mirrored is not supported"),
    (["sampling.attributes=[]"], "sampling.attributes=[] is invalid"),
    (["weighting=jtt", "weighting.jtt.share=1.5"], "weighting.jtt.share=1.5 is invalid: use a fraction in (0, 1)"),
    (["weighting=jtt", "weighting.jtt.first_epochs=0"], "weighting.jtt.first_epochs=0 is invalid"),
    (["weighting=jtt", "weighting.jtt.upweight=0"], "weighting.jtt.upweight=0.0 is invalid"),
    (["weighting=lds", "weighting.lds.sigma=0"], "weighting.lds.sigma=0.0 is invalid"),
    (["weighting=lds", "weighting.lds.form=log"],
     "weighting.lds.form='log' is invalid; accepted: inverse, sqrt_inverse."),
    (["calibration=group_offset", "calibration.folds=1"], "calibration.folds=1 is invalid: use a whole number >= 2"),
    (["calibration=group_offset", "calibration.min_count=0"], "calibration.min_count=0 is invalid"),
    (["calibration=group_offset", "calibration.attributes=[gender,age_group]"],
     "calibration.attributes=['gender', 'age_group'] is invalid: use a non-empty list of distinct attributes from "
     "gender, ethnicity, expression."),
    (["seed=-3"], "seed=-3 is invalid"),
    (["trainer.max_train_batches=0"], "trainer.max_train_batches=0 is invalid"),
    (["data=kit_arrays"], "data.root is required but not set: add data.root=… to the command line."),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES)
def test_bad_values_fail_with_one_sentence(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        to_train_config(compose_train(overrides))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_wrong_type_is_rejected_while_composing() -> None:
    with pytest.raises(Exception, match="lr"):
        compose_train(["schedule.stages.0.lr=fast"])


def test_a_new_schedule_needs_only_a_yaml_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    for source in CONF_DIR.rglob("*.yaml"):
        target = conf / source.relative_to(CONF_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
    (conf / "schedule" / "warmup_then_all.yaml").write_text(
        "name: warmup_then_all\nstages:\n"
        "  - {trainable: head, lr: 3.0e-4, max_epochs: 2, patience: 1, batch_size: 16}\n"
        "  - {trainable: all, lr: 1.0e-5, max_epochs: 4, patience: 2, batch_size: 16}\n"
    )
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        config = to_train_config(compose(config_name="train", overrides=["schedule=warmup_then_all"]))
    assert [s.trainable for s in config.schedule.stages] == ["head", "all"]


def test_a_tracking_uri_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://x")
    with pytest.raises(ConfigError, match=r"^MLFLOW_TRACKING_URI='ftp://x' is not a store MLflow can track to; "):
        to_train_config(compose_train())
    to_train_config(compose_train(["tracking=none"]))  # not used without tracking: not checked
