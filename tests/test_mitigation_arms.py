"""The mitigation benchmark's arms (conf/experiment/mitigation_*.yaml, swept by +sweep=mitigations): each composes,
and each differs from the baseline arm in exactly one mitigation group — config is data."""

from __future__ import annotations

import yaml
from conftest import CONF_DIR, compose_train

from facebias.options import CALIBRATIONS, SAMPLINGS, WEIGHTINGS

ARMS = sorted(path.stem for path in (CONF_DIR / "experiment").glob("mitigation_*.yaml"))
GROUPS = ("weighting", "sampling", "calibration")


def _choices(arm: str) -> dict[str, str]:
    config = compose_train([f"experiment={arm}"])
    return {group: config[group]["name"] for group in GROUPS}


def test_every_arm_is_the_baseline_plus_one_mitigation() -> None:
    baseline = _choices("mitigation_none")
    assert baseline == {"weighting": "none", "sampling": "shuffle", "calibration": "none"}
    changed = {}
    for arm in ARMS:
        if arm == "mitigation_none":
            continue
        choices = _choices(arm)
        differing = {group: value for group, value in choices.items() if value != baseline[group]}
        assert len(differing) == 1, (arm, differing)
        changed[arm] = next(iter(differing.values()))
    registered = {*WEIGHTINGS.names(), *SAMPLINGS.names(), *CALIBRATIONS.names()} - {"none", "shuffle"}
    assert sorted(changed.values()) == sorted(registered), "one arm per registered mitigation"


def test_the_sweep_runs_every_arm() -> None:
    sweep = yaml.safe_load((CONF_DIR / "sweep" / "mitigations.yaml").read_text())
    assert sweep["hydra"]["sweeper"]["params"]["experiment"] == "glob(mitigation_*)"
    assert len(ARMS) == 7
