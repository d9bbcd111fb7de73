"""The structure docs/architecture.md draws holds in the code: every facebias import points down its layers, no
import cycle, no module over 350 lines, and TensorFlow / MLflow only where the document allows them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "facebias"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), at any depth of the file (function-local imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def internal_imports(name: str) -> set[str]:
    """The facebias modules `name` imports (a `from package import module` counts as the module)."""
    return {imported for imported in imports_of(MODULES[name]) if imported in MODULES and imported != name}


def layers() -> list[tuple[int, list[str]]]:
    """(layer number, module prefixes) from the table of docs/architecture.md."""
    rows = []
    for line in ARCHITECTURE.read_text().splitlines():
        match = re.match(r"^\|\s*(\d+)\s*\|(.*?)\|", line)
        if match:
            rows.append((int(match.group(1)), re.findall(r"`(facebias[\w.]*)`", match.group(2))))
    return rows


def layer_of(name: str, table: list[tuple[int, list[str]]]) -> tuple[int, str]:
    """The layer of a module and the prefix that placed it there (the longest matching prefix wins)."""
    matches = [(len(prefix), number, prefix) for number, prefixes in table for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{name} is in no layer of docs/architecture.md")
    _, number, prefix = max(matches)
    return number, prefix


def test_every_module_has_a_layer_and_imports_point_down() -> None:
    table = layers()
    assert len(table) >= 4
    assert internal_imports("facebias") == set(), "the package root imports nothing of its own"
    wrong = []
    for name in (name for name in MODULES if name != "facebias"):
        number, prefix = layer_of(name, table)
        for imported in internal_imports(name):
            other, other_prefix = layer_of(imported, table)
            if other > number or (other == number and other_prefix != prefix):
                wrong.append(f"{name} (layer {number}) imports {imported} (layer {other})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = {name: internal_imports(name) for name in MODULES}
    state: dict[str, int] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for imported in sorted(graph[name]):
            if state.get(imported) == 1:
                cycles.append(" → ".join([*path[path.index(imported):], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ importing its own modules is not a cycle of jobs: keep only cycles between modules
    assert not [cycle for cycle in cycles if len(set(cycle.split(" → "))) > 1], "\n".join(cycles)


def package_of(name: str) -> str:
    """The top-level package (or module) of facebias that `name` belongs to: `facebias.run.sweep` → `facebias.run`."""
    return ".".join(name.split(".")[:2])


def test_top_level_packages_do_not_import_each_other() -> None:
    """Dependencies between packages run one way: e.g. a sweep's end (facebias.run) builds the report, so the report
    reads run identity and liveness from facebias.identity and facebias.liveness, never from facebias.run."""
    edges = {(package_of(name), package_of(imported)) for name in MODULES if name != "facebias"
             for imported in internal_imports(name) if package_of(name) != package_of(imported)}
    assert ("facebias.run", "facebias.report") in edges, "the sweep's end builds the report"
    assert sorted(f"{a} ⇄ {b}" for a, b in edges if (b, a) in edges and a < b) == []
    assert not [name for name in MODULES if package_of(name) == "facebias.report"
                and any(package_of(imported) == "facebias.run" for imported in internal_imports(name))]


def test_modules_are_small() -> None:
    large = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: lines for name, lines in large.items() if lines > MAX_LINES} == {}


TENSORFLOW_HOMES = ("facebias.data.pipeline", "facebias.models", "facebias.training", "facebias.runtime")


@pytest.mark.parametrize(("library", "allowed"), [
    ("mlflow", ("facebias.tracking",)),
    ("tensorflow", TENSORFLOW_HOMES),
    ("keras", TENSORFLOW_HOMES),
])
def test_heavy_libraries_stay_in_their_layers(library: str, allowed: tuple[str, ...]) -> None:
    outside = [name for name, path in MODULES.items()
               if any(imported == library or imported.startswith(library + ".") for imported in imports_of(path))
               and not any(name == prefix or name.startswith(prefix + ".") for prefix in allowed)]
    assert outside == []


def mitigation_name_comparisons(source: str) -> list[str]:
    """Comparisons in `source` of a value with a registered mitigation name written as a string literal (alone or
    in a tuple, list or set), e.g. `weighting.name == "group_dro"` or `method in ("none", "group")`. A name that
    another registry also has ("none": trainer.distribute=none) counts only when the compared expression mentions
    a mitigation kind (weighting, sampling, calibration)."""
    from facebias.options import CALIBRATIONS, REGISTRIES, SAMPLINGS, WEIGHTINGS

    kinds = (WEIGHTINGS, SAMPLINGS, CALIBRATIONS)
    names = {name for registry in kinds for name in registry.names()}
    shared = {name for registry in REGISTRIES if registry not in kinds for name in registry.names()}
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for operand in operands:
            items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            literals = {item.value for item in items if isinstance(item, ast.Constant) and item.value in names}
            others = " ".join(ast.unparse(other) for other in operands if other is not operand)
            mentions_kind = any(registry.group in others for registry in kinds)
            if literals - shared or (literals and mentions_kind):
                found.append(ast.unparse(node))
    return found


def test_the_name_rule_catches_name_tests() -> None:
    assert mitigation_name_comparisons('if weighting.name != "group_dro": pass') != []
    assert mitigation_name_comparisons('x = method in ("none", "group_dro")') != []
    assert mitigation_name_comparisons('x = config.calibration.name == "none"') != []
    assert mitigation_name_comparisons('x = trainer.distribute == "none"') == []


def test_mitigation_names_are_compared_only_in_their_registry() -> None:
    """Which mitigation a run has decides what happens through its hooks (facebias.mitigations), never by testing
    its name: outside facebias/options.py no module compares a value with a weighting, sampling or calibration
    name."""
    found = {name: hits for name, path in MODULES.items() if name != "facebias.options"
             and (hits := mitigation_name_comparisons(path.read_text()))}
    assert found == {}
