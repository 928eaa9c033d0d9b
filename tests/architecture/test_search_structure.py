"""The search owns its state: its phases (scoring, selection, rollout, interleaving, trace) never see `DeALSearch`
(they get what they need and return what they found), and sequences go back to the backend in one place."""

from __future__ import annotations

import ast

from tests.architecture.test_layout import ROOT

SEARCH = ROOT / "deal_core" / "search"


def test_the_phases_never_import_the_search():
    for path in SEARCH.glob("*.py"):
        if path.name in ("search.py", "__init__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "deal_core.search.search", path.name
                assert not (node.module == "deal_core.search" and any(a.name == "search" for a in node.names)), path.name


def test_sequences_are_freed_in_one_place():
    """Every `drop` of backend sequences in the search is `DeALSearch._free`."""
    drops = []
    for path in SEARCH.glob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                drops += [(path.name, function.name) for node in ast.walk(function)
                          if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                          and node.func.attr == "drop" and ast.unparse(node.func.value).endswith("lm")]
    assert drops == [("search.py", "_free")], drops
