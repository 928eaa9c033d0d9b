"""No module of ours reaches into another module's private names (`_x`): not by `from m import _x`, not through a
private module (`m._impl`), not as `module._x` on an imported module. A name another module needs is public (no
underscore) or lives in the module that uses it. (What the packages take from other projects is theirs to judge.)"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.test_layout import PACKAGES, ROOT, _modules


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_aliases(tree: ast.AST, known: set[str]) -> dict[str, str]:
    """Local names bound to modules: `import a.b as m`, `import a` (binds `a`), `from a import b` where `a.b` is a
    module of ours."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.partition(".")[0]] = a.name if a.asname else a.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _ours(module: str) -> bool:
    return module.partition(".")[0] in PACKAGES


def private_uses(source: str, known: set[str]) -> list[str]:
    """Each private name `source` takes from another module of ours, as 'line: what' (relative imports are ours)."""
    tree, found = ast.parse(source), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if not node.level and not _ours(module):
                continue
            if any(_private(part) for part in module.split(".")):
                found.append(f"{node.lineno}: from {module} import (a private module)")
            found += [f"{node.lineno}: from {module} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if _ours(a.name) and any(_private(part) for part in a.name.split("."))]
    aliases = _module_aliases(tree, known)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and _ours(aliases[node.value.id]):
            found.append(f"{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return sorted(found, key=lambda use: int(use.partition(":")[0]))


def test_no_module_imports_a_private_name_of_another():
    modules = _modules()
    found = {}
    for path in modules.values():
        uses = private_uses(path.read_text(), set(modules))
        if uses:
            found[str(path.relative_to(ROOT))] = uses
    assert not found, f"private names taken across modules (make them public, or move them): {found}"


def test_the_check_sees_each_way_of_taking_a_private_name():
    source = ("from deal_core.constraint import _CALLS, CALL_OPEN\n"
              "import deal_core._impl\n"
              "from deal_core.search import interleave\n"
              "import deal_core.engine as engine\n"
              "from llama_cpp._logger import set_verbose\n"
              "interleave._advance(None)\n"
              "engine._private\n"
              "engine.public\n"
              "self._own\n")
    known = {"deal_core", "deal_core.constraint", "deal_core.search", "deal_core.search.interleave", "deal_core.engine"}
    assert private_uses(source, known) == [
        "1: from deal_core.constraint import _CALLS", "2: import deal_core._impl",
        "6: deal_core.search.interleave._advance", "7: deal_core.engine._private"]


def test_the_packages_checked_are_the_shipped_ones():
    assert {name.partition(".")[0] for name in _modules()} == set(PACKAGES)
    assert all((Path(ROOT) / package / "__init__.py").is_file() for package in PACKAGES)
