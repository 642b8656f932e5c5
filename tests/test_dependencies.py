"""Dependencies: every third-party import of ``src/liverseg`` is declared in pyproject.toml (core or
an extra); a module that imports an extra's package checks for it first (``liverseg.extras.require``,
one line naming the extra); the segment path imports nothing from the extras, statically (every
import, lazy ones included) and at run time with the extras' packages made unimportable.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import tomllib

from liverseg.extras import EXTRAS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "liverseg"
#: the segment path: what `liverseg segment|demo|dicom` and the Python API of inference import
SEGMENT_ROOTS = ("liverseg.cli.segment", "liverseg.cli.demo", "liverseg.cli.dicom", "liverseg.inference")
#: extra imports that are neither behind require() nor errors: documented optional outputs
OPTIONAL_OUTPUTS = {"liverseg.cohort.table": {"pyarrow"}}  # cohort.parquet beside cohort.csv, logged


def _dist_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@cache
def _declared() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """(core distributions, extra -> its distributions), ``liverseg[...]`` references resolved."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    raw = project["optional-dependencies"]

    def resolve(extra: str) -> set[str]:
        out: set[str] = set()
        for req in raw[extra]:
            if _dist_name(req) == "liverseg":
                for inner in re.search(r"\[(.*)\]", req).group(1).split(","):
                    out |= resolve(inner.strip())
            else:
                out.add(_dist_name(req))
        return out

    core = frozenset(_dist_name(r) for r in project["dependencies"])
    return core, {extra: frozenset(resolve(extra)) for extra in raw}


@cache
def _dists_of(import_name: str) -> frozenset[str]:
    found = importlib.metadata.packages_distributions().get(import_name, [])
    return frozenset(_dist_name(d) for d in found)


class _Imports(ast.NodeVisitor):
    """Imports of one module: third-party names and liverseg modules, each marked guarded when a
    ``require(...)`` call comes before it in the same body (module or function)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.third: list[tuple[str, bool]] = []
        self.own: list[tuple[str, bool]] = []
        self.module_requires: list[str] = []
        self.requires: list[str] = []

    def visit_body(self, body: list[ast.stmt], guarded: bool, top: bool) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                func = stmt.value.func
                if isinstance(func, ast.Name) and func.id == "require":
                    extra = stmt.value.args[0].value
                    self.requires.append(extra)
                    if top:
                        self.module_requires.append(extra)
                    guarded = True
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                self._record(stmt, guarded)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt | ast.excepthandler):
                    nested = isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                    self.visit_body(
                        [h for i in inner for h in (i.body if isinstance(i, ast.excepthandler) else [i])],
                        guarded and not nested,
                        top and isinstance(stmt, ast.If | ast.Try | ast.With),
                    )

    def _record(self, node: ast.Import | ast.ImportFrom, guarded: bool) -> None:
        if isinstance(node, ast.ImportFrom):
            if node.level or not node.module:
                return
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            names = [a.name for a in node.names]
        for name in names:
            top = name.split(".")[0]
            if top == "liverseg":
                self.own.append((name, guarded))
            elif top not in sys.stdlib_module_names and top != "__future__":
                self.third.append((top, guarded))


@cache
def _modules() -> dict[str, _Imports]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        name = ".".join(parts)
        visitor = _Imports(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if isinstance(tree.body[0], ast.If) and "TYPE_CHECKING" in ast.unparse(tree.body[0].test):
            tree.body = tree.body[1:]
        visitor.visit_body([s for s in tree.body if not _is_type_checking(s)], False, True)
        out[name] = visitor
    return out


def _is_type_checking(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)


def _package_requires(module: str) -> set[str]:
    """Extras required at module level by ``module`` and the packages above it."""
    mods, parts, out = _modules(), module.split("."), set()
    for i in range(1, len(parts) + 1):
        found = mods.get(".".join(parts[:i]))
        if found is not None:
            out |= set(found.module_requires)
    return out


def test_every_third_party_import_is_declared():
    core, extras = _declared()
    everything = core.union(*extras.values())
    undeclared = {
        f"{name} ({mod})"
        for mod, imp in _modules().items()
        for name, _ in imp.third
        if not _dists_of(name) & everything
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {sorted(undeclared)}"


def test_the_extras_table_matches_pyproject():
    core, extras = _declared()
    for extra, names in EXTRAS.items():
        assert extra in extras, f"liverseg.extras names [{extra}], pyproject.toml has no such extra"
        for name in names:
            assert _dists_of(name) & extras[extra], f"{name} is not declared in [{extra}]"
            assert not _dists_of(name) & core, f"{name} is in [{extra}] and in the core dependencies"
    assert extras["dev"] >= set().union(*(extras[e] for e in EXTRAS)), "[dev] must hold every extra"


def test_every_import_of_an_extra_is_behind_require():
    core, extras = _declared()
    problems = []
    for mod, imp in _modules().items():
        for name, guarded in imp.third:
            dists = _dists_of(name)
            if dists & core or name in OPTIONAL_OUTPUTS.get(mod, ()):
                continue
            allowed = _package_requires(mod) | (set(imp.requires) if guarded else set())
            if not any(dists & extras[e] for e in allowed):
                owners = sorted(e for e in EXTRAS if dists & extras[e])
                problems.append(f"{mod} imports {name} ({'/'.join(owners)}) without require()")
    assert not problems, "\n".join(problems)


def test_the_segment_path_imports_nothing_from_the_extras():
    """Static: every liverseg module reachable from the segment commands (lazy imports included,
    not past a require() guard) imports only core packages."""
    mods, (core, _) = _modules(), _declared()
    seen, todo, problems = set(), list(SEGMENT_ROOTS), []
    while todo:
        mod = todo.pop()
        if mod in seen or mod not in mods:
            continue
        seen.add(mod)
        if _package_requires(mod):
            problems.append(f"{mod} (needs {sorted(_package_requires(mod))})")
            continue
        for name, guarded in mods[mod].third:
            if not guarded and not _dists_of(name) & core and name not in OPTIONAL_OUTPUTS.get(mod, ()):
                problems.append(f"{mod} imports {name}")
        parents = {".".join(mod.split(".")[:i]) for i in range(2, len(mod.split(".")))}
        todo += [n for n, guarded in mods[mod].own if not guarded] + sorted(parents)
    assert len(seen) > 40, sorted(seen)  # the walk did reach the pipeline
    assert not problems, "the segment path reaches extras:\n" + "\n".join(problems)


_RUNTIME_CHECK = r"""
import contextlib, io, json, sys
blocked = sys.argv[1].split(",")
for name in blocked:
    sys.modules[name] = None  # as if not installed: import fails, find_spec answers None
out = {}
import liverseg.cli.main as cli
cli.build_parser()
for m in ("liverseg.inference", "liverseg.io", "liverseg.reporting", "liverseg.metrics", "liverseg.cohort",
          "liverseg.preprocessing", "liverseg.models", "liverseg.catalog", "liverseg.data",
          "liverseg.training.checkpoint", "liverseg.cli.segment", "liverseg.cli.demo"):
    __import__(m)
out["loaded"] = sorted({k.split(".")[0] for k, v in sys.modules.items() if v is not None} & set(blocked))
for m in ("liverseg.service", "liverseg.pacs", "liverseg.training.augment_apply", "liverseg.cohort.ray_engine"):
    try:
        __import__(m)
        out[m] = "imported"
    except ImportError as exc:
        out[m] = f"{type(exc).__name__}: {exc}"
from liverseg.cohort.engines import make_engine
try:
    make_engine("ray")
except Exception as exc:
    out["engine ray"] = str(exc)
for argv in (["serve", "--data-dir", sys.argv[2]], ["users", "list", "--data-dir", sys.argv[2]],
             ["db", "current", "--data-dir", sys.argv[2]]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    out[" ".join(argv[:2])] = [rc, err.getvalue().strip()]
print(json.dumps(out))
"""


def test_without_the_extras_segmentation_imports_and_the_rest_names_its_extra(tmp_path):
    blocked = sorted({name for names in EXTRAS.values() for name in names})
    proc = subprocess.run(
        [sys.executable, "-c", _RUNTIME_CHECK, ",".join(blocked), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("loaded") == []
    expected = {
        "liverseg.service": "service",
        "liverseg.pacs": "pacs",
        "liverseg.training.augment_apply": "train",
        "liverseg.cohort.ray_engine": "cluster",
        "engine ray": "cluster",
    }
    for key, extra in expected.items():
        assert f"pip install 'liverseg[{extra}]'" in out[key], (key, out[key])
        assert "MissingExtraError" in out[key] or key == "engine ray", out[key]
    for command in ("serve --data-dir", "users list", "db current"):
        rc, err = out[command]
        assert rc == 1 and err.count("\n") == 0 and "pip install 'liverseg[service]'" in err, (command, err)
    assert not (tmp_path / "data").exists()  # refused before touching anything
