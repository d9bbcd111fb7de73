"""One command-line style (docs/cli.md): every command's `--help` works and lists its keys, `key=value` is read
the same way everywhere, and the old argparse spellings of report, sync and cache still work."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from facebias.cache import CACHE
from facebias.cache import main as cache_main
from facebias.cli import Command, UsageError, compose_config, leaf_keys, translate
from facebias.config import register_configs
from facebias.data.prepare import PREPARE
from facebias.overrides import override_value
from facebias.predict import PREDICT
from facebias.report.__main__ import REPORT
from facebias.report.__main__ import main as report_main
from facebias.sync import SYNC
from facebias.tracking.offline import sync_command

CLI_DOC = REPO_ROOT / "docs" / "cli.md"
SCRIPTS: dict[str, str] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
COMMANDS: dict[str, Command | None] = {
    "facebias.train": None,  # Hydra's own --help (conf/hydra/help/facebias.yaml)
    "facebias.data.prepare": PREPARE,
    "facebias.report": REPORT,
    "facebias.predict": PREDICT,
    "facebias.sync": SYNC,
    "facebias.cache": CACHE,
}


def documented_commands() -> list[str]:
    """The `python -m facebias.…` commands of the table of docs/cli.md."""
    return re.findall(r"^\| `python -m (facebias[\w.]*)`", CLI_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_every_command_and_console_script_is_documented() -> None:
    assert sorted(documented_commands()) == sorted(COMMANDS)
    text = CLI_DOC.read_text(encoding="utf-8")
    assert [script for script in SCRIPTS if f"`{script}`" not in text] == []
    modules = {target.partition(":")[0].removesuffix(".__main__") for target in SCRIPTS.values()}
    assert modules <= set(COMMANDS)


def _assert_clean_help(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, f"{what}: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stdout + result.stderr, what
    assert "%%" not in result.stdout, what
    assert result.stdout.strip(), what


@pytest.mark.parametrize("module", documented_commands())
def test_help_of_every_documented_command(module: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    _assert_clean_help(result, module)
    command = COMMANDS[module]
    if command is not None:
        register_configs()
        listed = re.findall(r"^  ([\w.]+)=", result.stdout, flags=re.MULTILINE)
        assert listed == leaf_keys(command, compose_config(command, []))
        assert result.stdout.startswith(f"usage: {command.prog} [key=value ...]")


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_of_every_console_script(script: str, tmp_path: Path) -> None:
    """The function each console script runs, called as the script calls it (its own argv)."""
    module, _, function = SCRIPTS[script].partition(":")
    program = f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; sys.exit({function}())"
    result = subprocess.run([sys.executable, "-c", program, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    _assert_clean_help(result, script)


def test_old_spellings_become_keys() -> None:
    assert translate(REPORT, ["--tracking-uri", "sqlite:////a b/mlflow.db", "--no-log", "--out=/tmp/o", "split=val"]
                     ) == ["tracking_uri='sqlite:////a b/mlflow.db'", "log=false", "out=/tmp/o", "split=val"]
    assert translate(REPORT, ["--experiment", "e1"]) == ["tracking.experiment=e1"]
    assert translate(CACHE, ["clear", "features"]) == ["action=clear", "kind=features"]
    assert translate(SYNC, ["/runs/x/tracking_offline", "--tracking-uri", "http://h:5000"]) == [
        "folder=/runs/x/tracking_offline", "tracking_uri=http://h:5000"]
    cfg = compose_config(REPORT, translate(REPORT, ["--parent", "0a1b", "--no-log", "--out", "o p"]))
    assert (cfg.parent, cfg.log, cfg.out) == ("0a1b", False, "o p")


@pytest.mark.parametrize("value", ["/runs/a,b/x", "/it's [odd]/x y", "c:\\dir\\x", "${not_a_key}", "end\\",
                                   "q\\'x", "plain/path-1.2"])
def test_a_value_passed_on_as_an_override_comes_back_as_it_was(value: str) -> None:
    """What an old positional argument, an old flag's value or `sync_command`'s folder becomes is read back
    unchanged: commas, brackets, quotes, backslashes and `${` included."""
    assert compose_config(SYNC, translate(SYNC, [value])).folder == value
    assert compose_config(SYNC, [f"folder={override_value(value)}"]).folder == value
    assert shlex.split(sync_command(Path(value)))[3] == f"folder={override_value(str(Path(value)))}"


def test_an_unknown_flag_or_key_is_one_sentence_with_the_keys(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UsageError, match=r"^--bogus is not an option of python -m facebias.cache: write key=value "
                                         r"with one of the keys action=…, kind=… \(see --help\)\.$"):
        translate(CACHE, ["--bogus"])
    assert report_main(["colour=red"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: colour=red: python -m facebias.report has no key colour; its keys: tracking.enabled, tracking.uri, "
        "tracking.store_dir, tracking.experiment, tracking.offline_after_s, tracking.log_model, tracking.register_as, "
        "tracking.system_metrics, parent, split, out, log, tracking_uri (see --help).")
    assert report_main(["--out"]) == 2
    assert capsys.readouterr().err.strip() == "error: --out needs a value: write out=… (see --help)."


def test_a_bad_value_is_one_sentence(capsys: pytest.CaptureFixture) -> None:
    assert cache_main(["action=wipe"]) == 1
    assert capsys.readouterr().err.strip() == "error: action=wipe is invalid; accepted: list, clear."
    assert report_main(["split=train", "tracking_uri=sqlite:///unused.db"]) == 1
    assert capsys.readouterr().err.strip() == "error: split=train is invalid; accepted: test, val."


def test_cache_lists_its_folders_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FACEBIAS_CACHE", str(tmp_path))
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "f.npy").write_bytes(b"x" * 2_000_000)
    assert cache_main(["kind=features"]) == 0
    new = capsys.readouterr().out
    assert cache_main(["list", "features"]) == 0
    assert capsys.readouterr().out == new == f"features   {tmp_path / 'features'} (2.0 MB)\n"
    assert cache_main(["action=clear", "kind=features"]) == 0
    assert not (tmp_path / "features").exists()


def test_a_cache_root_that_is_a_file_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FACEBIAS_CACHE", str(tmp_path / "taken"))
    (tmp_path / "taken").write_text("")
    for action in ("list", "clear"):
        assert cache_main([f"action={action}"]) == 1
        assert capsys.readouterr().err == (
            f"error: the cache root {tmp_path / 'taken'} (FACEBIAS_CACHE) is a file, not a folder: point "
            "FACEBIAS_CACHE at a folder, or unset it for ~/.cache/facebias.\n")
