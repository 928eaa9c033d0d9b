"""Every code block in the README and the documentation runs, so an example cannot rot.

Python blocks run each on its own (a fresh namespace, in this process, so the embedded model loads once) and must
print something; shell blocks may only hold `deal …` commands, each run through `python -m deal_core.cli`; data
blocks (json) must parse. A block that cannot run carries `notest` after its language and says why in its first
line (`# not run: …`).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON, SHELL, DATA = {"python", "py"}, {"bash", "sh", "shell", "console"}, {"json", "jsonl"}
LISTINGS = {"", "text", "yaml", "toml", "html", "svg"}  # shown, not run: output, diagrams, file listings


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    options: set[str]
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found = []
    for token in MarkdownIt().parse(page.read_text()):
        if token.type == "fence" and token.map:
            info = token.info.split()
            found.append(Block(page, token.map[0] + 1, info[0] if info else "", set(info[1:]), token.content))
    return found


ALL = [b for page in PAGES for b in blocks(page)]
SHELL_BLOCKS = [b for b in ALL if b.lang in SHELL and "notest" not in b.options]
PYTHON_BLOCKS = [b for b in ALL if b.lang in PYTHON and "notest" not in b.options]


def test_every_block_is_run_or_says_why():
    unknown = [b.where for b in ALL if b.lang not in PYTHON | SHELL | DATA | LISTINGS]
    assert unknown == [], f"blocks in a language the docs tests do not run: {unknown}"
    silent = [b.where for b in ALL if "notest" in b.options and not b.code.startswith("# not run")]
    assert silent == [], f"`notest` blocks must say why in their first line ('# not run: ...'): {silent}"
    runnable = [b for b in ALL if b.lang in PYTHON | SHELL and "notest" not in b.options]
    assert len(runnable) >= 20  # the examples are really collected


def test_data_blocks_parse():
    for block in [b for b in ALL if b.lang in DATA]:
        for line in block.code.splitlines() if block.lang == "jsonl" else [block.code]:
            json.loads(line)


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.where)
@pytest.mark.slow
def test_shell_blocks_run(block, tmp_path):
    commands = [shlex.split(line, comments=True) for line in block.code.splitlines()]
    commands = [c for c in commands if c]
    others = [c for c in commands if c[0] != "deal"]
    assert others == [], f"{block.where}: shell blocks run only `deal` commands; mark others `notest` with a reason"
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "deal_core.cli", *command[1:]], cwd=ROOT, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, f"{block.where}: {shlex.join(command)}\n{proc.stderr[-3000:]}"
        assert proc.stdout.strip() or proc.stderr.strip()


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.where)
def test_python_blocks_run(block, capsys):
    code = compile(block.code, f"{block.where} (a code block)", "exec")
    exec(code, {"__name__": "__docs__"})  # noqa: S102 - the documentation's own examples
    assert capsys.readouterr().out.strip(), f"{block.where} printed nothing: an example shows its result"
