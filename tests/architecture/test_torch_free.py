"""A process that only runs the embedded GGUF model on llama.cpp never imports torch: the llama.cpp engine proposes
on numpy (deal_core/backends/np_proposer.py) and torch is imported lazily, by the transformers engine, learned
rewards, sampling and repetition settings only. A module-level `import torch` on the llama.cpp path fails this."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LLAMACPP_OPT_IN

CODE = """
import sys
import deal_core, deal_core.cli
from deal_core import DeAL, load_model

lm = load_model(engine="llamacpp")
deal = DeAL(lm, max_new_tokens=6)
searched = deal.generate("Write one sentence about a dog.")
greedy = deal.greedy("Write one sentence about a dog.")
assert searched.token_ids and greedy.token_ids, (searched, greedy)
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


@pytest.mark.slow
def test_running_the_embedded_model_on_llama_cpp_never_imports_torch():
    pytest.importorskip("llama_cpp", reason=LLAMACPP_OPT_IN)
    root = Path(__file__).resolve().parents[2]  # this checkout's deal_core, whatever the current directory
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
