"""One command-line style for every facebias command: Hydra `key=value` overrides of conf/<command>.yaml.

`run_command` composes the command's config from the command line and hands it to the command; `--help` (or `-h`)
prints the usage and every key with its default; the spellings of the argparse era (`--parent RUN_ID`, a
positional FOLDER, `--no-log`) are translated to their keys, so old scripts keep working. A bad override is one
sentence (exit status 2), any other user error too (exit status 1); neither prints a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from facebias.errors import FacebiasError
from facebias.overrides import explain, override_value
from facebias.redaction import redacted_text, redacting_process_output

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
USAGE_ERROR = 2
"""Exit status of a command line that cannot be read (no such key, a value of the wrong kind)."""
HELP_FLAGS: tuple[str, ...] = ("--help", "-h")


class UsageError(FacebiasError):
    """A command line that is neither `key=value` nor an old flag of the command."""


@dataclass(frozen=True)
class Command:
    """A command: how it is run, what it does, its config, what its keys mean, and its old argparse spellings.

    `flags` maps an old flag to its key (`--parent` → `parent`), or to a whole override for a flag without a value
    (`--no-log` → `log=false`); `positional` names the keys old positional arguments set, in order. `listed` is the
    section of the config whose keys `--help` lists (the whole config when empty)."""

    prog: str
    config_name: str
    summary: str
    descriptions: Mapping[str, str] = field(default_factory=dict)
    flags: Mapping[str, str] = field(default_factory=dict)
    positional: tuple[str, ...] = ()
    listed: str = ""
    footer: str = ""


def compose_config(command: Command, overrides: Sequence[str]) -> DictConfig:
    """conf/<command.config_name>.yaml with `overrides` (HydraException when they cannot be applied)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=command.config_name):
        return compose(config_name=command.config_name, overrides=list(overrides))


def _flag_override(command: Command, flag: str, value: str | None) -> str:
    target = command.flags[flag]
    if "=" in target:
        return target
    if value is None:
        raise UsageError(f"{flag} needs a value: write {target}=… (see --help).")
    return f"{target}={override_value(value)}"


def translate(command: Command, argv: Sequence[str]) -> list[str]:
    """The command line as Hydra overrides: `key=value` as it is, old flags and positional arguments as keys."""
    overrides, positional, args = [], list(command.positional), list(argv)
    while args:
        arg = args.pop(0)
        flag, has_value, inline = arg.partition("=")
        if arg.startswith("--") and flag in command.flags:
            needs_value = "=" not in command.flags[flag]
            value = inline if has_value else (args.pop(0) if needs_value and args else None)
            overrides.append(_flag_override(command, flag, value))
        elif not has_value and positional and not arg.startswith("-"):
            overrides.append(f"{positional.pop(0)}={override_value(arg)}")
        elif arg.startswith("-") or not (has_value or arg.startswith("~")):
            keys = ", ".join(f"{key}=…" for key in leaf_keys(command, compose_config(command, [])))
            raise UsageError(f"{arg} is not an option of {command.prog}: write key=value with one of the keys "
                             f"{keys} (see --help).")
        else:
            overrides.append(arg)
    return overrides


def check_keys(command: Command, overrides: Sequence[str], cfg: DictConfig) -> None:
    """UsageError naming the first override whose key the command does not have, with the keys it does have (for a
    command with its own config; the training config's keys are Hydra's to check)."""
    if command.listed:
        return
    keys = leaf_keys(command, cfg)
    for override in overrides:
        key = override.partition("=")[0]
        if key.startswith(("+", "~")) or key in keys or any(known.startswith(f"{key}.") for known in keys):
            continue
        raise UsageError(f"{override}: {command.prog} has no key {key}; its keys: {', '.join(keys)} (see --help).")


def _leaves(node: object, prefix: str) -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), node)]


def listed_values(command: Command, cfg: DictConfig) -> list[tuple[str, object]]:
    """(key as `a.b.c`, default) of every leaf of the config, or of its `listed` section, as written (a required
    value is `???`)."""
    section = OmegaConf.select(cfg, command.listed) if command.listed else cfg
    return _leaves(OmegaConf.to_container(section, resolve=False), f"{command.listed}." if command.listed else "")


def leaf_keys(command: Command, cfg: DictConfig) -> list[str]:
    """The keys `--help` lists: every leaf of the config (or of its `listed` section), as `a.b.c`."""
    return [key for key, _ in listed_values(command, cfg)]


def _as_written(value: object) -> str:
    """A default as a user would write it on the command line (`???`, a required value, as `(required)`)."""
    if value == "???":
        return "(required)"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def help_text(command: Command, cfg: DictConfig) -> str:
    """Usage, what the command does, and every key with its default and (where known) what it means."""
    rows = []
    for key, value in listed_values(command, cfg):
        rows.append((f"{key}={_as_written(value)}", command.descriptions.get(key, "")))
    width = max(len(left) for left, _ in rows)
    keys = "\n".join(f"  {left:<{width}}  {right}".rstrip() for left, right in rows)
    lines = [f"usage: {command.prog} [key=value ...]", "", command.summary, "", "keys (default shown):", keys]
    if command.flags or command.positional:
        old = [f"{key.upper()} → {key}={key.upper()}" for key in command.positional]
        old += [f"{flag} → {target}" if "=" in target else f"{flag} X → {target}=X"
                for flag, target in command.flags.items()]
        lines += ["", f"older spellings still accepted: {'; '.join(old)}"]
    if command.footer:
        lines += ["", command.footer]
    return "\n".join(lines)


def run_command(command: Command, argv: Sequence[str] | None, action: Callable[[DictConfig], int]) -> int:
    """Compose the command's config from `argv` (default: sys.argv) and run `action` on it; `--help` prints the
    keys. Returns the exit status: 0, 1 for a user error, 2 for a command line that cannot be read. Nothing it logs
    or prints shows a credential (facebias.redaction)."""
    redacting_process_output()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if any(arg in HELP_FLAGS for arg in args):
            print(help_text(command, compose_config(command, [])))
            return 0
        overrides = translate(command, args)
        check_keys(command, overrides, compose_config(command, []))
        cfg = compose_config(command, overrides)
    except UsageError as error:
        print(f"error: {redacted_text(str(error))}", file=sys.stderr)
        return USAGE_ERROR
    except HydraException as error:
        print(f"error: {redacted_text(explain(error))}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return action(cfg)
    except FacebiasError as error:
        print(f"error: {redacted_text(str(error))}", file=sys.stderr)
        return 1
