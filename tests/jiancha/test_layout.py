"""The layer contracts cover every product package: a new top-level package that the contracts
do not name (or that is installed without an __init__.py) fails here, not silently in CI."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTSIDE_THE_LAYERS = {"tests", "bench", "tools"}  # may import anything; never imported by the product


def _product_packages() -> set[str]:
    return {
        d.name
        for d in REPO.iterdir()
        if d.is_dir() and not d.name.startswith(".") and d.name not in OUTSIDE_THE_LAYERS and any(d.glob("*.py"))
    }


def test_every_product_package_is_in_the_layer_contracts_and_installed():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    linter = pyproject["tool"]["importlinter"]
    roots = set(linter["root_packages"])
    assert _product_packages() == roots
    layers = next(c for c in linter["contracts"] if c["type"] == "layers")["layers"]
    assert {p.strip() for layer in layers for p in layer.split("|")} == roots
    for name in roots:  # a namespace package would let lint-imports look at another checkout
        assert (REPO / name / "__init__.py").is_file(), name
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {i.rstrip("*") for i in include} == roots
