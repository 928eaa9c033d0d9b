"""Each concept has one home, and this test finds copies that drift: a literal copy of a DeALConfig default or of a
preset, a `GenerationResult` built outside the result builder, the objective `log P + λ·R` or the mean
log-probability written out by hand, a stop-string matcher of its own, a tool call turned into OpenAI's shape by
hand."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from deal_core.config import PRESETS, DeALConfig

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("deal_core", "langchain_deal", "llamaindex_deal")
SEARCH_SETTINGS = ("top_k", "lookahead", "reward_weight", "max_new_tokens", "beam_width", "commit")


def _sources() -> Iterator[tuple[str, ast.AST]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text())


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    return None


def _settings_given(node: ast.AST) -> dict[str, float]:
    """Search settings given as numeric literals: keyword arguments of a call, or the keys of a dict literal."""
    pairs: list[tuple[str | None, ast.AST]] = []
    if isinstance(node, ast.Call):
        pairs = [(k.arg, k.value) for k in node.keywords]
    elif isinstance(node, ast.Dict):
        pairs = [(k.value if isinstance(k, ast.Constant) else None, v) for k, v in zip(node.keys, node.values)]
    return {k: v for k, n in pairs if k in SEARCH_SETTINGS and (v := _number(n)) is not None}


def test_no_literal_copy_of_a_default_or_a_preset():
    defaults = DeALConfig()
    presets = [{k: float(v) for k, v in p.items()} for p in PRESETS.values() if len(p) >= 2]
    copies = []
    for where, tree in _sources():
        if where == "deal_core/config.py":
            continue
        for node in ast.walk(tree):
            given = _settings_given(node)
            same = [k for k, v in given.items() if v == getattr(defaults, k)]
            if same:
                copies.append(f"{where}:{node.lineno} repeats the default of {', '.join(same)}")
            if any(p.items() <= {k: float(v) for k, v in given.items()}.items() for p in presets):
                copies.append(f"{where}:{node.lineno} writes out a preset: use deal_core.config.settings_of")
    assert not copies, "\n".join(copies)


def _calls_named(tree: ast.AST, name: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == name) or \
                    (isinstance(func, ast.Attribute) and func.attr == name):
                yield node


def test_one_result_builder():
    built = [f"{where}:{c.lineno}" for where, tree in _sources() if where != "deal_core/answers.py"
             for c in _calls_named(tree, "GenerationResult")]
    assert not built, f"GenerationResult built outside deal_core/answers.py: {built}"


def test_objective_and_mean_logprob_written_once():
    """`… + reward_weight * …` and `logp / max(len(…) …)` live in deal_core/objective.py only."""
    found = []
    for where, tree in _sources():
        if where == "deal_core/objective.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and any(
                    ast.unparse(side).endswith("reward_weight") or (isinstance(side, ast.Name) and side.id == "weight")
                    for side in (node.left, node.right)):
                found.append(f"{where}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and "logp" in ast.unparse(node.left) \
                    and ast.unparse(node.right).startswith("max(len("):
                found.append(f"{where}:{node.lineno} {ast.unparse(node)}")
    assert not found, "use deal_core.objective's functions:\n" + "\n".join(found)


def test_stop_strings_matched_in_one_module():
    """Only deal_core/stops.py looks for stop strings in text; every other place calls it."""
    found = []
    for where, tree in _sources():
        if where == "deal_core/stops.py":
            continue
        for node in ast.walk(tree):
            text = ast.unparse(node) if isinstance(node, (ast.comprehension, ast.Compare, ast.Call)) else ""
            if isinstance(node, ast.Compare) and any(isinstance(o, ast.In) for o in node.ops) and \
                    "stop" in ast.unparse(node.comparators[0]) and "decode" in text:
                found.append(f"{where}:{node.lineno} {text}")
            if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and isinstance(node.elt, ast.Compare) and \
                    any(isinstance(o, ast.In) for o in node.elt.ops) and \
                    any(ast.unparse(g.iter).endswith("stop") for g in node.generators):
                found.append(f"{where}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "find" \
                    and "stop" in ast.unparse(node.args[0] if node.args else node):
                found.append(f"{where}:{node.lineno} {text}")
    assert not found, "use deal_core.stops:\n" + "\n".join(found)


def test_tool_calls_take_openai_shape_in_one_place():
    found = [f"{where}:{n.lineno}" for where, tree in _sources() if where != "deal_core/messages.py"
             for n in ast.walk(tree) if isinstance(n, ast.Dict)
             and {"type", "function"} <= {k.value for k in n.keys if isinstance(k, ast.Constant)}
             and any(isinstance(v, ast.Dict) and "arguments" in ast.unparse(v) for v in n.values)]
    assert not found, f"use ToolCall.to_openai(): {found}"


def test_a_result_is_summarised_in_one_place():
    """What the search did (finish reason, rewards, counters) is written out for a frontend only by
    `GenerationResult.summary()`: a dict literal with a `reward_total` key elsewhere is a presenter of its own."""
    copies = []
    for where, tree in _sources():
        if where == "deal_core/result.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "reward_total"
                                                  for k in node.keys):
                copies.append(f"{where}:{node.lineno} builds a result summary by hand: use GenerationResult.summary()")
    assert not copies, "\n".join(copies)
