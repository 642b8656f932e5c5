"""No silent fallbacks: a broken import of liverseg's own modules or of a declared dependency fails
the importing module (never an empty result or a skipped check), nothing in src/liverseg catches
an ImportError to carry on, the tests import their dependencies instead of ``importorskip``, and
the bundled sample ships inside the package (a missing one is an error, never a phantom)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.resources
import sys
from pathlib import Path

import pytest
import tomllib

import liverseg
from liverseg.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "liverseg"
#: the only ImportError handlers allowed, each re-raising as a user error
IMPORT_HANDLERS = {"service/jobs.py": "a user-given --segmenter module:function (ConfigError)"}
#: the only find_spec calls allowed
FIND_SPEC = {"extras.py": "require()", "cohort/table.py": "cohort.parquet, an optional output"}


@pytest.mark.parametrize(
    ("module", "dependency"),
    [
        ("liverseg.service.registry", "liverseg.catalog"),
        ("liverseg.service.compare", "liverseg.reporting"),
        ("liverseg.reporting.report", "jsonschema"),
        ("liverseg.training.augmentation", "liverseg.training.augment_apply"),
    ],
)
def test_a_broken_import_fails_the_module(monkeypatch, module, dependency):
    parent, _, leaf = dependency.rpartition(".")
    monkeypatch.setitem(sys.modules, dependency, None)  # importing it now raises ImportError
    if parent in sys.modules:  # `from parent import leaf` would otherwise find the loaded attribute
        monkeypatch.delattr(sys.modules[parent], leaf, raising=False)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError):
        importlib.import_module(module)


def _handlers(tree: ast.AST) -> list[ast.ExceptHandler]:
    names = {"ImportError", "ModuleNotFoundError"}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if any(isinstance(c, ast.Name) and c.id in names for c in caught):
                out.append(node)
    return out


def test_no_module_catches_an_import_error_to_carry_on():
    found, spec_calls = {}, set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for handler in _handlers(tree):
            reraises = any(isinstance(n, ast.Raise) for n in ast.walk(handler))
            found[rel] = found.get(rel, True) and reraises
        if any(isinstance(n, ast.Attribute) and n.attr == "find_spec" for n in ast.walk(tree)):
            spec_calls.add(rel)
    assert set(found) == set(IMPORT_HANDLERS), found
    assert all(found.values()), f"an ImportError handler that does not raise: {found}"
    assert spec_calls == set(FIND_SPEC), spec_calls


def test_the_tests_import_their_dependencies_instead_of_skipping():
    offenders = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "tests").rglob("*.py")
        if "importorskip(" in p.read_text(encoding="utf-8") and p.name != Path(__file__).name
    ]
    assert offenders == []


def test_the_sample_ships_inside_the_package():
    sample = importlib.resources.files("liverseg") / "sample"
    for name in ("chaos_ct3_image.nii.gz", "chaos_ct3_label.nii.gz", "ATTRIBUTION.md"):
        assert sample.joinpath(name).is_file(), name
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "sample/*" in data["liverseg"]


def test_demo_refuses_a_missing_sample_instead_of_using_a_phantom(monkeypatch, tmp_path):
    from liverseg.cli import demo

    monkeypatch.setattr(liverseg.io, "SAMPLE_IMAGE", tmp_path / "gone.nii.gz")
    args = argparse.Namespace(out=tmp_path / "out", model="default", device="cpu")
    with pytest.raises(InputError, match="bundled sample is missing"):
        demo.run(args)
    assert not (tmp_path / "out").exists()
