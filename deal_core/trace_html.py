"""See a search: one self-contained HTML page of a traced generation (`trace=True`).

    result = deal.generate(prompt, trace=True)
    write_trace_html(result, "trace.html", prompt=prompt)        # or: deal generate PROMPT --trace-html trace.html

Each step is a table of its candidates: the token, its log P, the lookahead text that scored it, each reward's
value, the score (log P + λ·Σ wᵢ Rᵢ), and its fate — the winner marked, the pruned ones greyed (never rolled out:
they could not win). The page holds its own styles, no script and no link: it opens from a file, offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deal_core.result import CandidateTrace, GenerationResult, StepTrace

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; color: #1b1b1f; }
h1 { font-size: 1.4em; } h2 { font-size: 1.05em; margin: 1.6em 0 .3em; }
.answer { background: #eef6ee; padding: .6em .8em; border-radius: 6px; white-space: pre-wrap; }
.prefix { color: #555; white-space: pre-wrap; } .prefix b { color: #1b1b1f; }
table { border-collapse: collapse; width: 100%; margin-bottom: .4em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f6; padding: 0 3px; border-radius: 3px; white-space: pre-wrap; }
tr.won { background: #dff0d8; font-weight: 600; } tr.won td.fate::before { content: "\\2714  "; }
tr.pruned { color: #999; } tr.pruned code { background: none; color: #999; }
.legend span { margin-right: 1.5em; } .meta { color: #555; }
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _candidate_row(c: CandidateTrace, reward_names: Sequence[str]) -> str:
    rewards = "".join(f'<td class="num">{_number(c.rewards.get(n), 3) if n in c.rewards else "–"}</td>'
                      for n in reward_names)
    lookahead = f"<code>{_esc(c.lookahead)}</code>" if c.lookahead else ""
    return (f'<tr class="{c.status}" data-status="{c.status}"><td class="fate">{c.status}</td>'
            f"<td><code>{_esc(c.token)}</code></td><td class=\"num\">{_number(c.logprob)}</td>"
            f"<td>{lookahead}</td>{rewards}<td class=\"num\">{_number(c.score)}</td></tr>")


def _step_section(step: StepTrace, reward_names: Sequence[str]) -> str:
    head = "".join(f"<th>{_esc(n)}</th>" for n in reward_names)
    rows = "\n".join(_candidate_row(c, reward_names) for c in step.candidates)
    winner = next((c.token for c in step.candidates if c.status == "won"), "")
    beam = f", beam {step.beam}" if step.beam else ""
    return (f'<section class="step" data-step="{step.step}"><h2>Step {step.step}{beam}: '
            f"<code>{_esc(winner)}</code> wins</h2>"
            f'<p class="prefix">{_esc(step.prefix)}<b>{_esc(winner)}</b></p>'
            f"<table><thead><tr><th>fate</th><th>token</th><th>log P (prefix + token)</th><th>lookahead</th>{head}"
            f"<th>score</th></tr></thead><tbody>\n{rows}\n</tbody></table></section>")


def reward_names(trace: Sequence[StepTrace]) -> list[str]:
    """Every reward named in the trace, in first-seen order."""
    names: dict[str, None] = {}
    for step in trace:
        for c in step.candidates:
            names.update(dict.fromkeys(c.rewards))
    return list(names)


def trace_html(result: GenerationResult, prompt: str = "", title: str = "DeAL search trace",
               settings: dict[str, Any] | None = None) -> str:
    """The page as a string. `result` must come from a call with `trace=True`."""
    if not result.trace:
        raise ValueError("this result has no trace: generate with trace=True (CLI: --trace-html sets it)")
    names = reward_names(result.trace)
    steps = "\n".join(_step_section(s, names) for s in result.trace)
    shown = ", ".join(f"{k}={v}" for k, v in (settings or {}).items())
    final = ", ".join(f"{k}={v:.3f}" for k, v in result.rewards.items())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
            f"<body><h1>{_esc(title)}</h1>"
            + (f'<p class="meta">Prompt: <code>{_esc(prompt)}</code></p>' if prompt else "")
            + (f'<p class="meta">Settings: {_esc(shown)}</p>' if shown else "")
            + f'<p class="meta">Answer ({len(result.token_ids)} tokens, {len(result.trace)} steps; rewards on the '
              f"final text: {_esc(final or 'none')}):</p><p class=\"answer\">{_esc(result.text)}</p>"
            + '<p class="legend"><span><b>won</b>: committed</span><span>lost: rolled out and scored, beaten'
              '</span><span style="color:#999">pruned: never rolled out, its log P + λ · (reward bound) could not '
              "win</span><span>score = log P + λ · Σ w·R</span></p>"
            + steps + "</body></html>\n")


def write_trace_html(result: GenerationResult, path: str | Path, **options: Any) -> Path:
    """Write `trace_html(result, **options)` to `path` (its folder must exist); returns the path."""
    out = Path(path)
    out.write_text(trace_html(result, **options), encoding="utf-8")
    return out
