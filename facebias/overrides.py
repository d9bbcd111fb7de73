"""Hydra's composition errors (a bad command-line override) as one sentence naming the override and what exists.

Hydra reports an unknown option, an unknown key, an item past a list's end (`schedule.stages.5.lr=1`) or a value of
the wrong type in several lines with its search path; `explain` turns each into `backbone=nope: no such option;
available: …` or `seed=abc: not a whole number.` Flags Hydra cannot combine (`-m --cfg job`) it refuses with a
ValueError before composing anything, and an output folder it cannot write with an OSError; `hydra_refusal`
tells those from any other.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import fields, is_dataclass
from pathlib import Path

import hydra
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

SCHEMA_SUFFIX = "_schema"
"""Config-store entries that are schemas of a group's options (facebias.config), not options themselves."""
EXPECTED_TYPES: dict[str, str] = {
    "Integer": "not a whole number",
    "Float": "not a number",
    "valid bool": "not true or false",
    "ListConfig": "not a list; write it as [a, b]",
}
"""Words of OmegaConf's conversion errors → what the value is not."""
MERGING = re.compile(r"^Error merging override (?P<override>.+)$")
OVERRIDING = re.compile(r"^Could not override '(?P<key>[^']+)'")


PLAIN_VALUE = re.compile(r"^[\w./:@~+-]*$")
"""A value Hydra's override grammar reads as it is written; `override_value` quotes any other."""


def override_value(value: str) -> str:
    """`value` as the right-hand side of a Hydra override: as it is, or quoted when Hydra would read it otherwise
    (a comma makes a sweep, brackets a list; quotes, `${` and backslashes are special)."""
    if PLAIN_VALUE.match(value):
        return value
    # In Hydra's quoted strings a quote is escaped, and so is each backslash right before a quote or at the end;
    # `\${` keeps OmegaConf from reading an interpolation.
    escaped = re.sub(r"(\\*)('|$)", lambda match: match.group(1) * 2 + ("\\'" if match.group(2) else ""), value)
    return "'" + escaped.replace("${", "\\${") + "'"


def _first_line(text: str) -> str:
    """The first line that says something (not Hydra's `Error parsing override …` heading nor its `See …` link)."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith(("Error parsing override", "See https://"))]
    return (lines[0] if lines else text.strip()).rstrip(".")


def _user_key(full_key: object) -> str:
    """OmegaConf's `schedule.stages[0].lr` as a user writes it: `schedule.stages.0.lr`."""
    return re.sub(r"\[(\d+)\]", r".\1", str(full_key))


def _missing_option(error: MissingConfigException) -> str:
    match = re.search(r"Could not find '(?P<path>[^']+)'", str(error))
    if match is None or error.options is None:
        return f"{_first_line(str(error))}."
    group, _, name = match.group("path").rpartition("/")
    options = [option for option in error.options if not option.endswith(SCHEMA_SUFFIX)]
    return f"{group}={name}: no such option; available: {', '.join(options)}."


def _known_keys(node_type: object) -> str:
    return ", ".join(item.name for item in fields(node_type)) if is_dataclass(node_type) else "see --cfg job"


def _missing_item(override: str, cause: OmegaConfBaseException) -> str | None:
    """The sentence for an override of a list item past the list's end (`schedule.stages.5.lr=1`), else None."""
    items, index = getattr(cause, "parent_node", None), getattr(cause, "key", None)
    item = _user_key(getattr(cause, "full_key", ""))
    overridden = override.partition("=")[0].lstrip("+~")
    if not isinstance(items, ListConfig) or not isinstance(index, int) or index < len(items) or \
            not f"{overridden}.".startswith(f"{item}."):
        return None  # not an item the override names (e.g. one of a list it gives whole)
    key = item.rpartition(".")[0]
    if key == "schedule.stages":
        schedule = items._get_parent()
        name = schedule.get("name") if isinstance(schedule, DictConfig) else None
        count = len(items)
        stages = {0: "no stages", 1: "1 stage (schedule.stages.0)"}.get(
            count, f"{count} stages (schedule.stages.0 to schedule.stages.{count - 1})")
        return (f"{override}: no such stage; schedule {name!r} has {stages}: choose a schedule with more stages "
                "(schedule=…, listed by --help) or give every stage with schedule.stages=[…].")
    return f"{override}: no such item; {key} has {len(items)} (numbered from 0)."


def _bad_value(override: str, cause: OmegaConfBaseException) -> str:
    message = _first_line(getattr(cause, "msg", None) or str(cause))
    missing = _missing_item(override, cause)
    if missing is not None:
        return missing
    if isinstance(cause, ConfigKeyError) or message.startswith("Key '"):
        key = _user_key(getattr(cause, "full_key", override))
        section = key.rpartition(".")[0] or "the config"
        return f"{override}: no such key; {section} has: {_known_keys(getattr(cause, 'object_type', None))}."
    if isinstance(cause, ValidationError):
        for words, meaning in EXPECTED_TYPES.items():
            if words in message:
                return f"{override}: {meaning}."
    return f"{override}: {message}."


def explain(error: HydraException) -> str:
    """One sentence for a Hydra composition or override-parsing error: the override, then what is accepted."""
    if isinstance(error, MissingConfigException):
        return _missing_option(error)
    if isinstance(error, OverrideParseException):
        return (f"{error.override}: cannot be read as an override ({_first_line(error.message)}); write key=value "
                "or group=option, e.g. backbone=resnet50 (see --help).")
    first = _first_line(str(error))
    found = MERGING.match(first) or OVERRIDING.match(first)
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException) and found is not None:
        return _bad_value(found.group(1), cause)
    return f"{first}."


HYDRA_PACKAGE = Path(hydra.__file__).parent
FACEBIAS_PACKAGE = Path(__file__).parent


def hydra_refusal(error: Exception) -> str | None:
    """Hydra's refusal of the command as one sentence — of its flags (`--multirun` with `--cfg`, `--resolve` without
    `--cfg`, `--shell-completion` without a subcommand: a ValueError), or of its output folder (an OSError: a file in
    the way, no permission) — or None when `error` was not raised by Hydra's own code: no frame of Hydra's on its way
    up, or a frame of facebias' (the task function, a callback) among them."""
    frames = traceback.extract_tb(error.__traceback__)[1:]  # the first frame is the caller's, which caught it
    files = [Path(frame.filename) for frame in frames]
    if not any(file.is_relative_to(HYDRA_PACKAGE) for file in files):
        return None
    if any(file.is_relative_to(FACEBIAS_PACKAGE) for file in files):
        return None
    if isinstance(error, OSError):
        return (f"Hydra cannot write its output folder {error.filename}: {error.strerror}; run the command in a "
                "folder you can write, or set hydra.run.dir=… (hydra.sweep.dir=… for a sweep).")
    return f"{str(error).rstrip('.!')}."
