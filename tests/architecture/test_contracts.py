"""The layers, enforced by import-linter (its contracts are `[tool.importlinter]` in pyproject.toml): the wrappers use
the core's public modules only, the rewards never import the engine or the search, the core never imports the
benchmarks, the batch jobs, the CLI or the wrappers, and the benchmarks and jobs sit above the wrappers. Imports
inside functions and under `if TYPE_CHECKING:` count."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.architecture.test_layout import PACKAGES, ROOT

CONTRACTS = {c["id"]: c for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
             ["contracts"]}
# What the wrappers may import (the rest of deal_core is the wrappers contract's forbidden list).
PUBLIC = {"deal_core.config", "deal_core.errors", "deal_core.request", "deal_core.result", "deal_core.rewards",
          "deal_core.params", "deal_core.streaming", "deal_core.guard", "deal_core.tool_turns"}
ABOVE_THE_CORE = {"deal_core.bench", "deal_core.jobs", "deal_core.cli", "deal_core.docs_gen"}


def _lint(root: Path) -> subprocess.CompletedProcess:
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.fail("import-linter is not installed: pip install -e '.[dev]' (it is in the dev extra)")
    return subprocess.run([str(linter), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})  # the packages under `root`


def _children() -> set[str]:
    """deal_core's top-level modules and subpackages."""
    return {f"deal_core.{p.stem if p.suffix else p.name}" for p in (ROOT / "deal_core").iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}


def test_the_import_contracts_are_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out.stdout, out.stdout


def test_every_module_of_the_core_is_placed_in_the_contracts():
    """A new module must be declared public or internal to the wrappers, and core or above it."""
    children = _children()
    assert set(CONTRACTS["wrappers-public-api"]["forbidden_modules"]) | PUBLIC == children
    assert not set(CONTRACTS["wrappers-public-api"]["forbidden_modules"]) & PUBLIC
    assert set(CONTRACTS["core-below-bench-and-jobs"]["source_modules"]) | ABOVE_THE_CORE == children
    assert set(CONTRACTS["core-below-bench-and-jobs"]["forbidden_modules"]) >= ABOVE_THE_CORE | set(PACKAGES[1:])


def test_a_broken_layer_is_reported(tmp_path):
    """The check can fail: a copy of the packages with one forbidden import per contract breaks each of them."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "files"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "langchain_deal" / "reach_in.py").write_text("from deal_core.runner import Runner\n")
    (tmp_path / "deal_core" / "rewards" / "reach_up.py").write_text("from deal_core.search import DeALSearch\n")
    with open(tmp_path / "deal_core" / "guard.py", "a") as guard:  # a module of the core, a function-level import
        guard.write("\n\ndef reach_bench():\n    from deal_core.bench import tasks\n")
    (tmp_path / "llamaindex_deal" / "reach_jobs.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deal_core.jobs import BatchRow\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert f"Contracts: 0 kept, {len(CONTRACTS)} broken." in out.stdout, out.stdout
    for needle in ("langchain_deal.reach_in -> deal_core.runner", "deal_core.rewards.reach_up -> deal_core.search",
                   "deal_core.guard -> deal_core.bench", "llamaindex_deal.reach_jobs -> deal_core.jobs"):
        assert needle in out.stdout, (needle, out.stdout)
