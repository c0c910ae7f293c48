"""The installed environment is inside the ranges pyproject.toml declares as tested."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Packages whose internals the code relies on: each must be held below its next minor (or, for
# transformers, its next major), or a release could change what we call without a test failing.
INTERNALS = ("torch", "transformers", "peft", "gguf", "sentence-transformers")


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    listed = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra]
    return {(r := Requirement(d)).name: r for d in listed}


def test_installed_versions_are_the_tested_ones() -> None:
    for name, requirement in requirements().items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional extra that is not installed
        assert requirement.specifier.contains(version, prereleases=True), (name, version)


@pytest.mark.parametrize("name", INTERNALS)
def test_packages_whose_internals_we_use_have_an_upper_bound_and_a_tested_floor(
        name: str) -> None:
    requirement = requirements()[name]
    bounds = {spec.operator: spec.version for spec in requirement.specifier}
    assert set(bounds) == {">=", "<"}, requirement
    installed = importlib.metadata.version(name).split("+")[0]
    assert requirement.specifier.contains(installed)
    assert installed.split(".")[0] == bounds[">="].split(".")[0]  # the floor is the tested major
