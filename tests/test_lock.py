"""constraints.txt, the lock of exact versions the quickstart and .ci/run install, agrees with pyproject.toml's
ranges: every dependency (and test extra) of pyproject is locked, at a version its range accepts, and the lock is
closed (what each locked package needs is locked too)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from collections.abc import Iterable, Mapping

from conftest import REPO_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = REPO_ROOT / "constraints.txt"
PYPROJECT = REPO_ROOT / "pyproject.toml"


def read_lock(text: str) -> dict[str, Version]:
    """Canonical name → pinned version; every line but comments is `name==version`, each name once."""
    pins: dict[str, Version] = {}
    for line in (line.strip() for line in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.extras and requirement.marker is None, line
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is locked twice"
        pins[name] = Version(specifier.version)
    return pins


def disagreements(requirements: Iterable[Requirement], pins: Mapping[str, Version]) -> list[str]:
    """Each requirement that the lock leaves out or pins outside its range (pre-releases count as outside unless the
    range names one), as a sentence."""
    wrong = []
    for requirement in requirements:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            wrong.append(f"{requirement.name} is not locked")
        elif not requirement.specifier.contains(pinned, prereleases=bool(requirement.specifier.prereleases)):
            wrong.append(f"{requirement.name} is locked at {pinned}, outside {requirement.specifier}")
    return wrong


def project_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def test_the_check_catches_a_missing_pin_a_pin_out_of_range_and_a_pre_release() -> None:
    pins = read_lock("# a comment\nhydra-core==1.4.0rc3\nNumPy==2.4.6\nkeras==3.9.0\n")
    assert pins == {"hydra-core": Version("1.4.0rc3"), "numpy": Version("2.4.6"), "keras": Version("3.9.0")}
    requirements = [Requirement(text) for text in ("numpy>=1.26", "keras>=3.10", "hydra_core>=1.3.2", "scipy>=1.11")]
    assert disagreements(requirements, pins) == [
        "keras is locked at 3.9.0, outside >=3.10", "hydra_core is locked at 1.4.0rc3, outside >=1.3.2",
        "scipy is not locked"]


def test_every_dependency_of_pyproject_is_locked_within_its_range() -> None:
    pins = read_lock(LOCK.read_text(encoding="utf-8"))
    assert disagreements(project_requirements(), pins) == []
    assert {name: str(pins[name]) for name in ("tensorflow", "keras", "numpy", "mlflow")} == {
        "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "mlflow": "3.17.2"}, "the README's versions"


def test_what_the_locked_packages_need_is_locked() -> None:
    """Walks the requirements (with their extras, as markers select them here) from pyproject's through the
    metadata of the installed packages; a package installed at another version than locked is not followed."""
    pins = read_lock(LOCK.read_text(encoding="utf-8"))
    unlocked, seen = set(), set()
    todo = project_requirements()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        if name not in pins:
            unlocked.add(name)
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(distribution.version) != pins[name]:
            continue
        for line in distribution.requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra})
                                            for extra in ("", *requirement.extras)):
                todo.append(needed)
    assert sorted(unlocked) == []
    assert len(seen) > 100, "the walk followed the installed packages' requirements"
