"""The manual holds: the MkDocs site builds with --strict, its examples run, and its reference pages list what the
code composes and records (docs/development/tests.md, "The manual's own tests").

Examples: every ```python block of a page under docs/ runs, the page's blocks in order in one namespace, in a fresh
process in a temporary folder; every `python -m facebias.<command> … --help | --cfg job` line of a ```bash block
runs and is checked against what it asks for. `<!-- no-test -->` on the line before a block leaves it out (it
needs a trained run, real data or a server); `<!-- test-setup: … -->` holds Python that runs, unseen, at its place
among the page's blocks.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT, compose_train
from omegaconf import OmegaConf

from facebias.options import REGISTRIES

DOCS = REPO_ROOT / "docs"
NO_TEST = "<!-- no-test -->"
SETUP_START = "<!-- test-setup:"
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
CHEAP_COMMAND = re.compile(r"^python -m (facebias(?:\.\w+)+)\s(.*)$")
"""A command line the tests run: `python -m facebias.<module> …` with `--help` or `--cfg job` (see `cheap`)."""


@dataclass(frozen=True)
class Block:
    """One fenced block of a page (`lang` "python-setup" for a hidden test-setup comment), where it starts."""

    lang: str
    code: str
    line: int
    tested: bool


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks and test-setup comments of `markdown`, in order; a block right after `<!-- no-test -->`
    (blank lines between allowed) is not tested."""
    found: list[Block] = []
    lines = markdown.splitlines()
    index, previous = 0, ""
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith(SETUP_START):
            end = next(i for i in range(index, len(lines)) if lines[i].rstrip().endswith("-->"))
            body = "\n".join([stripped[len(SETUP_START):].strip(), *lines[index + 1:end + 1]])
            found.append(Block("python-setup", body.rstrip().removesuffix("-->"), index + 1, True))
            index, previous = end + 1, "-->"
            continue
        fence = FENCE.match(line)
        if fence:
            indent = len(fence["indent"])
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            code = "\n".join(body[indent:] for body in lines[index + 1:end])
            found.append(Block(fence["lang"], code, index + 1, previous != NO_TEST))
            index, previous = end + 1, "```"
            continue
        if stripped:
            previous = stripped
        index += 1
    return found


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def python_program(page: Path) -> str:
    """The page's tested Python blocks (test-setup comments included), in order, as one program."""
    return "\n\n".join(block.code for block in blocks(page.read_text(encoding="utf-8"))
                       if block.tested and block.lang in ("python", "python-setup"))


def cheap(line: str) -> tuple[str, list[str]] | None:
    """(module, arguments) of a command line the tests run: `python -m facebias.… --help` or `… --cfg job …`."""
    match = CHEAP_COMMAND.match(line.strip())
    if not match or not ("--help" in line or "--cfg job" in line):
        return None
    arguments = shlex.split(match[2], comments=True)
    asks = "--help" in arguments or arguments[:2] == ["--cfg", "job"]
    return (match[1], arguments) if asks else None


def help_tested_elsewhere() -> set[str]:
    """The commands of docs/cli.md's table but `facebias.train`: tests/test_cli.py runs their `--help` already."""
    table = (DOCS / "cli.md").read_text(encoding="utf-8") if (DOCS / "cli.md").exists() else ""
    return set(re.findall(r"^\| `python -m (facebias[\w.]*)`", table, flags=re.MULTILINE)) - {"facebias.train"}


def commands() -> dict[tuple[str, ...], str]:
    """Every cheap command of a tested bash block of the docs, once: (module, *arguments) → where it is written
    (less the `--help` of commands tests/test_cli.py runs)."""
    elsewhere = help_tested_elsewhere()
    found: dict[tuple[str, ...], str] = {}
    for page in pages():
        for block in blocks(page.read_text(encoding="utf-8")):
            if block.tested and block.lang in ("bash", "sh", "console"):
                for offset, line in enumerate(block.code.replace("\\\n", " ").splitlines(), start=1):
                    command = cheap(line)
                    if command and not (command[0] in elsewhere and "--help" in command[1]):
                        module, arguments = command
                        found.setdefault((module, *arguments), f"{page.relative_to(REPO_ROOT)}:{block.line + offset}")
    return found


# --- the extractor itself --------------------------------------------------------------------------------------------

EXAMPLE = """# A page

<!-- test-setup: import math
half = 0.5 -->

```python
x = math.floor(half)
```

<!-- no-test -->

```python
load_model("runs:/<run id>/model")
```

- a list item

    ```bash
    python -m facebias.train --cfg job seed=3   # composed
    python -m facebias.train seed=3
    ```
"""


def test_blocks_are_found_in_order_with_their_setup_and_markers() -> None:
    found = blocks(EXAMPLE)
    assert [(block.lang, block.tested) for block in found] == [
        ("python-setup", True), ("python", True), ("python", False), ("bash", True)]
    assert found[0].code.strip() == "import math\nhalf = 0.5"
    assert found[1].code == "x = math.floor(half)"
    assert found[3].code.splitlines()[0] == "python -m facebias.train --cfg job seed=3   # composed"
    assert [cheap(line) for line in found[3].code.splitlines()] == [
        ("facebias.train", ["--cfg", "job", "seed=3"]), None]


def test_a_page_program_runs_its_setup_before_its_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(EXAMPLE)
    namespace: dict[str, Any] = {}
    exec(python_program(page), namespace)
    assert namespace["x"] == 0
    assert "load_model" not in python_program(page)


# --- the site ---------------------------------------------------------------------------------------------------------


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    # the README's quickstart is included on the home page, and the API page is rendered from the docstrings
    home = html.unescape(re.sub(r"<[^>]+>", "", (site / "index.html").read_text(encoding="utf-8")))
    assert "pip install -c constraints.txt -e . && python -m facebias.train" in home
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="facebias.metrics.bias_scores"' in api
    assert "MAE and the four bias scores" in api


# --- the examples -----------------------------------------------------------------------------------------------------

PYTHON_PAGES = [page for page in pages() if python_program(page).strip()]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[str(page.relative_to(DOCS)) for page in PYTHON_PAGES])
def test_the_python_examples_of_a_page_run(page: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", python_program(page)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"{page.relative_to(REPO_ROOT)}:\n{done.stderr[-3000:]}"


def test_the_docs_have_python_examples_that_run() -> None:
    assert {page.relative_to(DOCS).as_posix() for page in PYTHON_PAGES} >= {"metrics.md",
                                                                            "development/extending.md"}


def composed_value(config: dict[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def same(written: str, composed: Any) -> bool:
    """Whether an override's value as written is the composed value (Hydra reads 3e-4 as a float, YAML does not)."""
    if isinstance(composed, bool) or not isinstance(composed, int | float):
        return yaml.safe_load(written) == composed
    return float(written) == float(composed)


def test_the_cheap_commands_of_the_docs_run_and_do_what_they_say(tmp_path: Path) -> None:
    found = commands()
    assert any(command[1:3] == ("--cfg", "job") for command in found), found
    assert any("--help" in command for command in found), found
    running = {command: subprocess.Popen([sys.executable, "-m", *command], cwd=tmp_path, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True) for command in found}
    for command, process in running.items():
        out, err = process.communicate(timeout=120)
        where = found[command]
        assert process.returncode == 0, f"{where}: {' '.join(command)}\n{err[-2000:]}"
        module, *arguments = command
        if "--help" in arguments:
            if module == "facebias.train":
                assert all(name in out for registry in REGISTRIES for name in registry.names()), where
            continue
        config = yaml.safe_load(out)
        for argument in arguments[2:]:
            key, _, value = argument.partition("=")
            if "." in key:
                assert same(value, composed_value(config, key)), f"{where}: {argument}"
            elif isinstance(config.get(key), dict):
                assert config[key].get("name") == value, f"{where}: {argument}"


# --- the reference pages ----------------------------------------------------------------------------------------------

ROW = re.compile(r"^\|\s*`(?P<key>[^`]+)`\s*\|(?P<default>[^|]*)\|")


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Every key of a composed config (a list is one value), dotted."""
    if not isinstance(node, dict):
        return {prefix: node}
    found: dict[str, Any] = {}
    for key, value in node.items():
        found.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def test_the_config_reference_lists_every_key_with_its_default() -> None:
    composed: dict[str, Any] = {}
    for overrides in ([], ["data=appa_real"], ["data=kit_arrays"]):
        config = OmegaConf.to_container(compose_train(overrides), resolve=False)
        for key, value in leaves(config).items():
            composed.setdefault(key, value)
    documented = {}
    for line in (DOCS / "reference" / "config.md").read_text(encoding="utf-8").splitlines():
        row = ROW.match(line)
        if row:
            documented[row["key"]] = row["default"]
    assert sorted(set(composed) - set(documented)) == [], "keys missing from docs/reference/config.md"
    assert sorted(key for key in documented if "<" not in key and key not in composed) == [], \
        "docs/reference/config.md lists keys the config does not have"
    wrong = {}
    for key, value in composed.items():
        written = re.search(r"`([^`]*)`", documented[key])
        if written and yaml.safe_load(written[1]) != value:
            wrong[key] = (written[1], value)
    assert wrong == {}, "defaults in docs/reference/config.md differ from the composed ones (written, composed)"


TAG_CONSTANT = re.compile(r'^\s*[A-Z_]+_TAG\s*(?::\s*str\s*)?=\s*"([\w.]+)"', re.MULTILINE)


def test_the_mlflow_reference_lists_every_tag_the_code_defines() -> None:
    tags = {tag for path in (REPO_ROOT / "facebias").rglob("*.py")
            for tag in TAG_CONSTANT.findall(path.read_text(encoding="utf-8"))}
    assert {"facebias.config_fingerprint", "facebias.killed_reason", "mlflow.parentRunId"} <= tags
    reference = (DOCS / "reference" / "mlflow.md").read_text(encoding="utf-8")
    assert sorted(tag for tag in tags if f"`{tag}`" not in reference) == []


def test_the_readme_is_a_short_tour_whose_test_command_ci_runs() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    commands_of_readme = [line for block in blocks(readme) if block.lang == "bash"
                          for line in block.code.splitlines()]
    test_command = next(line for line in commands_of_readme if line.endswith("python -m pytest"))
    # .ci/run runs the same steps, in the same order (other steps, such as the type check, may come between)
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").replace("\\\n", " ")
    position = 0
    for step in (step.strip() for step in test_command.split("&&")):
        assert step in ci[position:], f".ci/run does not run `{step}` of the README's test command (in its order)"
        position = ci.index(step, position) + len(step)
    assert any(line.endswith("&& python -m facebias.train") for line in commands_of_readme)
