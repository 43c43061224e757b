"""The layers the README draws, checked against the imports the code actually makes.

``config <- core <- db <- {api, worker} <- services <- cli``, with ``sending`` (the HTTP sender) and
``metrics`` beside api and worker so that both use them without importing each other, and ``tracing``
(config and core only) under db, which all of them may use. Every import is read from the source with
``ast``: module-level, inside functions, under ``TYPE_CHECKING`` alike.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "mailhooks"
ROOT_PACKAGE = "(mailhooks)"  # the package's own __init__ (``__version__``)

# What each layer may never import. Core is stricter still (``CORE_MAY_IMPORT``): only config.
NEVER = {
    "db": {"api", "worker", "sending", "services", "bootstrap", "cli"},
    "api": {"worker", "services", "bootstrap", "cli"},
    "worker": {"api", "services", "bootstrap", "cli"},
    "sending": {"db", "api", "worker", "services", "cli"},
    "metrics": {"api", "worker", "services", "cli"},
    # Traces sit below db (the ingest transaction's span) and import only config and core.
    "tracing": {"db", "api", "worker", "sending", "metrics", "services", "bootstrap", "cli"},
    "bootstrap": {"api", "worker", "services", "cli"},
    "services": {"cli"},
}
CORE_MAY_IMPORT = {"core", "config", ROOT_PACKAGE}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    path: Path
    line: int
    target: str  # the imported module, dotted
    statement: str  # as written

    def __str__(self) -> str:
        return f"{self.module} ({self.path}:{self.line}) imports {self.target}: `{self.statement}`"


def package_of(module: str) -> str:
    """The top-level part of mailhooks a module belongs to: ``mailhooks.api.ui`` -> ``api``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_PACKAGE


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(src: Path = SRC) -> list[Import]:
    """Every import of a ``mailhooks`` module by a module under ``src/mailhooks``."""
    files = sorted((src / ROOT).rglob("*.py"))
    modules = {_module_name(path, src): path for path in files}
    found: list[Import] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):  # every node: function bodies and ``if TYPE_CHECKING:`` blocks too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against the importing module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from mailhooks import metrics`` imports the module mailhooks.metrics; ``from
                # mailhooks.core import accounts`` likewise; ``from x import name`` imports x.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in dict.fromkeys(targets):
                if target == ROOT or target.startswith(ROOT + "."):
                    found.append(Import(module, path.relative_to(src.parent), node.lineno, target,
                                        ast.unparse(node)))
    return found


def layer_violations(imports: Iterable[Import]) -> list[str]:
    problems = []
    for imp in imports:
        source, target = package_of(imp.module), package_of(imp.target)
        if source == "core" and target not in CORE_MAY_IMPORT:
            problems.append(f"{imp}\n    core imports only config (declare a Protocol in core instead)")
        elif target in NEVER.get(source, ()):
            problems.append(f"{imp}\n    {source} must not import {target}")
    return problems


def package_cycles(imports: Iterable[Import]) -> list[str]:
    """Each set of packages that import each other, directly or around a loop, with the imports that
    close it (one example per package-to-package edge)."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        source, target = package_of(imp.module), package_of(imp.target)
        if source != target:
            edges.setdefault(source, {}).setdefault(target, imp)
    # Tarjan's strongly connected components: a component of two or more packages is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted({*edges, *(t for targets in edges.values() for t in targets)}):
        if node not in index:
            visit(node)
    problems = []
    for component in components:
        if len(component) > 1:
            members = set(component)
            closing = [str(imp) for source in sorted(members) for target, imp in sorted(edges[source].items())
                       if target in members]
            problems.append(f"packages {', '.join(sorted(members))} import each other:\n    "
                            + "\n    ".join(closing))
    return problems


def test_the_layers_hold() -> None:
    imports = read_imports()
    assert {package_of(imp.module) for imp in imports} >= {"core", "db", "api", "worker", "services", "cli"}
    problems = layer_violations(imports)
    assert not problems, "imports across the layers (README, Layout):\n" + "\n".join(problems)


def test_no_two_packages_import_each_other() -> None:
    problems = package_cycles(read_imports())
    assert not problems, "\n".join(problems)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        path = src / ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_every_kind_of_import_is_read_and_named(tmp_path: Path) -> None:
    """The checks are only as good as the reader: imports in functions, under TYPE_CHECKING and relative
    ones count, and a failure names the module, the line and the statement."""
    src = _tree(tmp_path, {
        "__init__.py": "",
        "config.py": "",
        "core/__init__.py": "",
        "core/rules.py": ("from typing import TYPE_CHECKING\n"
                          "if TYPE_CHECKING:\n    from mailhooks.db.store import Store\n"),
        "db/__init__.py": "",
        "db/store.py": "from ..core import rules\n",
        "api/__init__.py": "",
        "api/edge.py": "def handler():\n    import mailhooks.worker.loop\n",
        "worker/__init__.py": "",
        "worker/loop.py": "from mailhooks import api\n",
    })
    imports = read_imports(src)
    assert {(imp.module, imp.target) for imp in imports} == {
        ("mailhooks.core.rules", "mailhooks.db.store"),
        ("mailhooks.db.store", "mailhooks.core.rules"),
        ("mailhooks.api.edge", "mailhooks.worker.loop"),
        ("mailhooks.worker.loop", "mailhooks.api"),
    }
    problems = "\n".join(layer_violations(imports))
    assert "mailhooks.core.rules (src/mailhooks/core/rules.py:3) imports mailhooks.db.store" in problems
    assert "`from mailhooks.db.store import Store`" in problems
    assert "api must not import worker" in problems and "worker must not import api" in problems
    cycles = package_cycles(imports)
    assert len(cycles) == 2 and any("packages core, db import each other" in c for c in cycles)


# ---------------------------------------------------------------------- sizes: files and classes of one concern
MAX_MODULE_LINES = 400
MAX_CONSTRUCTOR_ATTRIBUTES = 12


def _modules(src: Path = SRC) -> list[Path]:
    return [p for p in sorted((src / ROOT).rglob("*.py")) if "migrations" not in p.parts]


def constructor_attributes(tree: ast.AST) -> dict[str, set[str]]:
    """For each class, the ``self.x`` its ``__init__`` sets."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for init in node.body:
            if isinstance(init, ast.FunctionDef | ast.AsyncFunctionDef) and init.name == "__init__":
                found[node.name] = {
                    target.attr for stmt in ast.walk(init) if isinstance(stmt, ast.Assign | ast.AnnAssign)
                    for assigned in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
                    for target in ast.walk(assigned)
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self"}
    return found


def test_no_module_is_over_400_lines() -> None:
    long = [f"{p.relative_to(SRC.parent)}: {n} lines" for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "modules over 400 lines (split them by concern):\n" + "\n".join(long)


def test_no_constructor_sets_more_than_12_attributes() -> None:
    crowded = [f"{p.relative_to(SRC.parent)}: {cls} sets {len(attrs)} ({', '.join(sorted(attrs))})"
               for p in _modules() for cls, attrs in constructor_attributes(ast.parse(p.read_text())).items()
               if len(attrs) > MAX_CONSTRUCTOR_ATTRIBUTES]
    assert not crowded, "classes doing too much in one place:\n" + "\n".join(crowded)


def test_constructor_attributes_are_counted_once_each() -> None:
    tree = ast.parse("class A:\n    def __init__(self):\n        self.a = 1\n        self.a: int = 2\n"
                     "        self.b, self.c = 1, 2\n        other.d = 3\n")
    assert constructor_attributes(tree) == {"A": {"a", "b", "c"}}
