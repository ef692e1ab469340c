"""The module graph, from the source: no import cycle, and the two programs do not reach into each other.

Every import counts, those inside functions too (a lazy import is still a dependency); only the
blocks under `if TYPE_CHECKING:` do not, as they never run. Relative imports are resolved, and
`from . import x` counts as importing the package's __init__ and the module x.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import imageserving_fleet

ROOT = Path(imageserving_fleet.__file__).parent
PACKAGE = "imageserving_fleet"
AGENT, FLEET = f"{PACKAGE}.agent", f"{PACKAGE}.fleet"


def module_names(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> file, for every .py file below root (a package is its __init__.py)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth; `if TYPE_CHECKING:` bodies skipped."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def imported_by(name: str, is_package: bool, source: str, modules: Iterable[str]) -> set[str]:
    """Takes a module's name and source; returns the package modules it imports."""
    known = set(modules)
    found: set[str] = set()
    for node in _imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from p import x`: p itself, and p.x when x is a module
            targets = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        for target in targets:
            # `import a.b.c` names a.b.c; the nearest known module is what it loads of ours
            while target and target not in known:
                target = target.rpartition(".")[0] if "." in target else ""
                if not target.startswith(PACKAGE):
                    break
            if target in known and target != name:
                found.add(target)
    return found


def graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    mods = module_names(root, package)
    return {name: imported_by(name, path.name == "__init__.py", path.read_text(), mods)
            for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def path_through(edges: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle inside a component, to name in a failure: start -> ... -> start."""
    members, start = set(component), component[0]
    trail, seen = [start], {start}
    while True:
        nxt = next((w for w in sorted(edges[trail[-1]]) if w in members and (w == start or w not in seen)), None)
        if nxt is None or nxt == start:
            return trail + [start]
        trail.append(nxt)
        seen.add(nxt)



@functools.cache
def package_graph() -> dict[str, set[str]]:
    """The package's graph, read once and only by a test that needs it (not at every worker's collection)."""
    return graph()


# ------------------------------------------------------------------ the parts, on small trees
def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return graph(tmp_path / "pkg", "pkg")


@pytest.mark.parametrize(("files", "module", "expected"), [
    ({"__init__.py": "", "a.py": "from . import b\n", "b.py": ""}, "pkg.a", {"pkg", "pkg.b"}),
    ({"__init__.py": "", "s/__init__.py": "", "s/a.py": "from ..b import x\n", "b.py": ""}, "pkg.s.a", {"pkg.b"}),
    ({"__init__.py": "", "s/__init__.py": "from .a import x\n", "s/a.py": ""}, "pkg.s", {"pkg.s.a"}),
    ({"__init__.py": "", "a.py": "def f():\n    import pkg.b.c\n", "b/__init__.py": "", "b/c.py": ""},
     "pkg.a", {"pkg.b.c"}),
    ({"__init__.py": "", "a.py": "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from .b import x\n", "b.py": ""},
     "pkg.a", set()),
    ({"__init__.py": "", "a.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import b\nelse:\n    from . import c\n",
      "b.py": "", "c.py": ""}, "pkg.a", {"pkg", "pkg.c"}),
    ({"__init__.py": "", "a.py": "import os\nfrom json import dumps\n"}, "pkg.a", set()),
])
def test_edges(tmp_path: Path, files: dict[str, str], module: str, expected: set[str]) -> None:
    assert _tree(tmp_path, files)[module] == expected


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    edges = _tree(tmp_path, {"__init__.py": "", "a.py": "from .b import x\n", "c.py": "from . import a\n",
                             "b.py": "def f():\n    from .c import y\n"})
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert path_through(edges, ["pkg.a", "pkg.b", "pkg.c"]) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


# ------------------------------------------------------------------ the package
def test_the_graph_is_read() -> None:
    assert f"{AGENT}.client" in package_graph()[f"{AGENT}.control"]
    assert len(package_graph()) > 100


def test_no_import_cycle() -> None:
    found = [" -> ".join(path_through(package_graph(), c)) for c in cycles(package_graph())]
    assert not found, "import cycles:\n" + "\n".join(found)


@pytest.mark.parametrize(("side", "other"), [(AGENT, FLEET), (FLEET, AGENT)])
def test_neither_program_imports_the_other(side: str, other: str) -> None:
    reach = sorted(f"{m} -> {t}" for m, targets in package_graph().items() if m == side or m.startswith(side + ".")
                   for t in targets if t == other or t.startswith(other + "."))
    assert not reach, f"{side} imports {other}:\n" + "\n".join(reach)


def test_shared_modules_import_neither_program() -> None:
    """What both programs import (errors, schema, home, protocol, metrics...) must not pull either in."""
    shared = [m for m in package_graph() if m != PACKAGE and m.count(".") == 1 and m not in (AGENT, FLEET)]
    reach = sorted(f"{m} -> {t}" for m in shared for t in package_graph()[m] if t.startswith((AGENT, FLEET)))
    assert len(shared) >= 10 and not reach, "\n".join(reach)
