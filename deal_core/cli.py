"""The `deal` command: `deal generate PROMPT …` and `deal bench TASK …`."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from deal_core.errors import DeALError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="DeAL: decoding-time alignment as reward search.")
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The user prompt.")],
    keywords: Annotated[Optional[str], typer.Option(help="Comma-separated words the output should use.")] = None,
    min_words: Annotated[Optional[int], typer.Option(help="Length reward: at least N words.")] = None,
    max_words: Annotated[Optional[int], typer.Option(help="Length reward: at most N words.")] = None,
    reward: Annotated[
        Optional[list[str]], typer.Option("--reward", help="Reward spec NAME[=ARG][:WEIGHT], repeatable.")
    ] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Candidates per step (default 10).")] = None,
    lookahead: Annotated[Optional[int], typer.Option(help="Lookahead tokens per candidate (default 10).")] = None,
    beam_width: Annotated[Optional[int], typer.Option(help="States kept per step (default 1).")] = None,
    commit: Annotated[Optional[int], typer.Option(help="Tokens committed per step (default 1).")] = None,
    weight: Annotated[Optional[float], typer.Option("--weight", help="λ, the reward weight (default 5.0).")] = None,
    alignment_prompt: Annotated[Optional[str], typer.Option(help="System instruction prepended to the prompt.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Token budget (default 128).")] = None,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", help="Stop string, repeatable.")] = None,
    model: Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Plain greedy decoding for comparison.")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="Show each step's candidates and rewards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Generate an aligned response to PROMPT."""
    from deal_core.decoder import DeAL
    from deal_core.rewards import Keywords, Length, RewardSum, rewards_from_cli

    try:
        rewards = rewards_from_cli(reward or [])
        if keywords is not None:
            rewards = rewards + Keywords(keywords=keywords.split(","))
        if min_words is not None or max_words is not None:
            rewards = rewards + Length(min_words=min_words, max_words=max_words)
        deal = DeAL(model, rewards=rewards if rewards.terms else RewardSum())
        settings = dict(
            top_k=top_k, lookahead=lookahead, beam_width=beam_width, commit=commit, reward_weight=weight,
            alignment_prompt=alignment_prompt, max_new_tokens=max_new_tokens, stop=tuple(stop) if stop else None,
            trace=trace or None,
        )
        if greedy:
            result = deal.greedy(prompt, **{k: v for k, v in settings.items() if k in ("max_new_tokens", "stop",
                                                                                   "alignment_prompt")})
        else:
            result = deal.generate(prompt, **settings)
    except DeALError as exc:
        _fail(str(exc))
    except Exception as exc:  # pydantic errors from reward constructors reach here
        _fail(f"{type(exc).__name__}: {exc}")

    if as_json:
        payload = result.model_dump(mode="json", exclude_none=True)
        payload["mode"] = "greedy" if greedy else "deal"
        payload["model"] = deal.lm.name
        payload["settings"] = deal.config.updated(**settings).model_dump(mode="json")
        payload["reward_specs"] = deal.rewards.spec()
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    out = Console()
    out.print(result.text)
    if result.trace:
        for step in result.trace:
            table = Table(title=f"step {step.step}", show_lines=False)
            for col in ("status", "token", "lookahead", "logprob", "score", "rewards"):
                table.add_column(col)
            for c in step.candidates:
                table.add_row(c.status, repr(c.token), repr(c.lookahead), f"{c.logprob:.2f}",
                              "-" if c.score is None else f"{c.score:.2f}",
                              ", ".join(f"{k}={v:.2f}" for k, v in c.rewards.items()))
            err.print(table)
    summary = ", ".join(f"{k}={v:.3f}" for k, v in result.rewards.items())
    err.print(f"[dim]{'greedy' if greedy else 'deal'}: {len(result.token_ids)} tokens, "
              f"{result.stats.wall_time_s:.2f}s, finish={result.finish_reason}{', ' + summary if summary else ''}[/]")


@app.command()
def prepare(
    model: Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")] = None,
) -> None:
    """Convert and cache the embedded model's weights (done automatically on first use; ~20 s once)."""
    from deal_core.model import embedded_model_dir, load_model

    try:
        if model is None:
            err.print(f"embedded model ready at {embedded_model_dir()}")
        else:
            err.print(f"loaded {load_model(model).name}")
    except DeALError as exc:
        _fail(str(exc))


@app.command()
def bench(
    task: Annotated[str, typer.Argument(help="speed | commongen | length | harmless | jailbreak | tradeoff")],
    model: Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")] = None,
    data: Annotated[Optional[str], typer.Option(help="Data file (defaults to ../shared/data/...).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Number of examples (task default if omitted).")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Token budget per example.")] = None,
    top_k: Annotated[Optional[int], typer.Option(help="DeAL candidates per step (task default if omitted).")] = None,
    lookahead: Annotated[Optional[int], typer.Option(help="DeAL lookahead tokens (task default if omitted).")] = None,
    weight: Annotated[Optional[float], typer.Option("--weight", help="DeAL λ (task default if omitted).")] = None,
    json_out: Annotated[
        Optional[str], typer.Option("--json", help="Write JSON here (plus .md table and .png plot beside it).")
    ] = None,
) -> None:
    """Run a benchmark TASK and print a table."""
    from deal_core.bench import run_task

    try:
        options = {"limit": limit, "max_new_tokens": max_new_tokens}
        search = {"top_k": top_k, "lookahead": lookahead, "reward_weight": weight}
        settings = {k: v for k, v in search.items() if v is not None}
        run_task(task, model=model, data=data, json_out=json_out, settings=settings,
                 **{k: v for k, v in options.items() if v})
    except DeALError as exc:
        _fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
