"""The `deal` command: `deal generate PROMPT …`, `deal batch IN OUT`, `deal serve`, `deal prepare`, `deal bench TASK`.

Every error a user can cause ends as one line on stderr and exit status 2; `deal --debug …` (or `DEAL_DEBUG=1`)
shows the traceback instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from deal_core.bench.tasks import TASKS, TUNABLE_SETTINGS
from deal_core.cli.checks import bench_split, fail
from deal_core.cli.options import given, options, with_options
from deal_core.cli.pages import write_results_page, write_trace_page
from deal_core.config import DeALConfig
from deal_core.errors import DeALError, describe_validation_error
from deal_core.serving.limits import ServerLimits

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="DeAL: decoding-time alignment as reward search.")
err = Console(stderr=True)
_DEBUG = {"on": bool(os.environ.get("DEAL_DEBUG"))}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    _DEBUG["on"] = _DEBUG["on"] or debug


Model = Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")]
SEARCH = options(DeALConfig)  # every setting an option, from its declaration (cli/options.py)
ISOLATE_HELP = ("llama.cpp: each request in a KV cache of its own, its answer bit-identical to the request alone; "
                "requests take turns (slower). Default: they share passes.")
EngineOption = Annotated[Optional[str], typer.Option(
    "--engine", help="auto | llamacpp | transformers (default: $DEAL_ENGINE, else auto: the embedded model on "
                     "llama.cpp when it is installed, Hugging Face models on transformers).")]


def _use_engine(engine: str | None) -> None:
    """`--engine` chooses the engine of this command's models (and of the Ray workers it starts): `$DEAL_ENGINE`."""
    if engine is not None:
        from deal_core.backends.loader import resolve_engine

        os.environ["DEAL_ENGINE"] = resolve_engine(engine)


@app.command()
@with_options(SEARCH)
def generate(
    prompt: Annotated[str, typer.Argument(help="The user prompt.")],
    keywords: Annotated[Optional[str], typer.Option(help="Comma-separated words the output should use.")] = None,
    min_words: Annotated[Optional[int], typer.Option(help="Length reward: at least N words.")] = None,
    max_words: Annotated[Optional[int], typer.Option(help="Length reward: at most N words.")] = None,
    reward: Annotated[
        Optional[list[str]], typer.Option("--reward", help="Reward spec NAME[=ARG][:WEIGHT], repeatable.")
    ] = None,
    model: Model = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Plain greedy decoding for comparison.")] = False,
    engine: EngineOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    trace_html: Annotated[Optional[str], typer.Option(
        "--trace-html", metavar="FILE", help="Write the traced search as a self-contained HTML page (sets --trace).")
    ] = None,
    **search: Any,
) -> None:
    """Generate an aligned response to PROMPT (--trace shows each step's candidates and rewards)."""
    from deal_core.config import make_config
    from deal_core.decoder import DeAL
    from deal_core.request import Request
    from deal_core.rewards import RewardSum

    _use_engine(engine)
    settings = given(DeALConfig, search)
    show_trace = bool(settings.get("trace"))
    if trace_html is not None:
        if greedy:
            fail("--trace-html traces a DeAL search; leave out --greedy")
        settings["trace"] = True
    config = make_config(**settings)  # bad settings fail here (greedy too), before the model loads
    rewards = _generate_rewards(reward, keywords, min_words, max_words)
    request = Request.of(prompt, rewards if rewards.terms else RewardSum(), **settings)
    deal = DeAL(model)
    result = deal.greedy(request) if greedy else deal.generate(request)
    if trace_html is not None:
        write_trace_page(result, trace_html, prompt, config)
    if as_json:
        payload = result.model_dump(mode="json", exclude_none=True)
        payload["mode"] = "greedy" if greedy else "deal"
        payload["model"] = deal.lm.name
        payload["settings"] = config.model_dump(mode="json")
        payload["reward_specs"] = request.rewards.spec()
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    sys.stdout.write(result.text + "\n")  # the model's text as it is: no markup, emoji codes or re-wrapping
    _print_trace(result.trace or [] if show_trace else [])
    summary = ", ".join(f"{k}={v:.3f}" for k, v in result.rewards.items())
    err.print(f"[dim]{'greedy' if greedy else 'deal'}: {len(result.token_ids)} tokens, "
              f"{result.stats.wall_time_s:.2f}s, finish={result.finish_reason}{', ' + summary if summary else ''}[/]")


def _generate_rewards(reward: list[str] | None, keywords: str | None, min_words: int | None,
                      max_words: int | None) -> Any:
    """`deal generate`'s rewards: its --reward specs, plus --keywords and --min/--max-words."""
    from deal_core.rewards import Keywords, Length, rewards_from_cli

    try:
        rewards = rewards_from_cli(reward or [])
        if keywords is not None:
            rewards = rewards + Keywords(keywords=keywords.split(","))
        if min_words is not None or max_words is not None:
            rewards = rewards + Length(min_words=min_words, max_words=max_words)
    except Exception as exc:  # pydantic errors from reward constructors reach here
        if isinstance(exc, DeALError) or _DEBUG["on"]:
            raise
        fail(f"{type(exc).__name__}: {exc}")
    return rewards


def _print_trace(trace: list[Any]) -> None:
    """`--trace`: each step's candidates, their lookaheads, rewards, scores and fate (on stderr)."""
    for step in trace:
        table = Table(title=f"step {step.step}", show_lines=False)
        for col in ("status", "token", "lookahead", "logprob", "score", "rewards"):
            table.add_column(col)
        for c in step.candidates:
            table.add_row(c.status, repr(c.token), repr(c.lookahead), f"{c.logprob:.2f}",
                          "-" if c.score is None else f"{c.score:.2f}",
                          ", ".join(f"{k}={v:.2f}" for k, v in c.rewards.items()))
        err.print(table)


@app.command()
def prepare(
    model: Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")] = None,
) -> None:
    """Convert and cache the embedded model's weights (done automatically on first use; ~10 s once)."""
    from deal_core.model import embedded_model_dir, load_model

    if model is None:
        err.print(f"embedded model ready at {embedded_model_dir()}")
    else:
        err.print(f"loaded {load_model(model).name}")


@app.command()
@with_options(options(DeALConfig, TUNABLE_SETTINGS))
def bench(
    task: Annotated[
        str, typer.Argument(help=" | ".join(TASKS))
    ],
    model: Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")] = None,
    data: Annotated[
        Optional[str], typer.Option(help="Data file (default: the CommonGen/AdvBench files shipped with the package).")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Number of examples (task default if omitted).")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(min=1, help="Token budget per example.")] = None,
    json_out: Annotated[
        Optional[str], typer.Option("--json", help="Write JSON here (plus .md table and .png plot beside it).")
    ] = None,
    report: Annotated[Optional[str], typer.Option("--report", metavar="PAGE.md", help="Write a results page here "
                      "(command, date, machine, settings, data split, table, plot), its JSON and plot beside.")] = None,
    concurrency: Annotated[Optional[str], typer.Option(
        help="serve only: comma-separated concurrency levels (default 1,4,16).")] = None,
    split: Annotated[Optional[str], typer.Option(
        help="commongen/speed/engines: all | easy (3 concepts) | hard (4-5 concepts); harmless/jailbreak/overrefusal/"
             "agent/tools: dev | test | all; safety: dev | heldout.")] = None,
    engine: EngineOption = None,
    **search: Any,
) -> None:
    """Run a benchmark TASK and print a table."""
    from deal_core.bench import run_task
    from deal_core.bench.data import data_file
    from deal_core.config import make_config

    _use_engine(engine)

    options: dict[str, Any] = {"limit": limit, "max_new_tokens": max_new_tokens}
    if concurrency is not None:
        if task != "serve":
            fail(f"--concurrency is for `deal bench serve`, not {task}")
        try:
            options["concurrency"] = tuple(int(c) for c in concurrency.split(","))
        except ValueError:
            fail(f"--concurrency takes comma-separated integers like 1,4,16, got {concurrency!r}")
    if split is not None:
        options["split"] = bench_split(task, split)
    settings = given(DeALConfig, search)
    make_config(**settings)  # bad settings and a missing data file fail here, before any model is loaded
    if data is not None:
        data_file(data)
    if report is not None and json_out is None:
        json_out = str(Path(report).with_suffix(".json"))
    result = run_task(task, model=model, data=data, json_out=json_out, settings=settings,
                      **{k: v for k, v in options.items() if v is not None})
    if report is not None:
        write_results_page(task, result, report, json_out)


@app.command()
@with_options(SEARCH)
def batch(
    in_path: Annotated[str, typer.Argument(metavar="IN", help='JSONL rows: {"id", "prompt"|"messages", "rewards"?}.')],
    out_path: Annotated[str, typer.Argument(metavar="OUT", help="JSONL results, appended; ids already there are "
                                                                "skipped (a rerun resumes).")],
    reward: Annotated[
        Optional[list[str]], typer.Option("--reward", help="Default reward NAME[=ARG][:WEIGHT] of rows without their "
                                                           "own `rewards`, repeatable.")
    ] = None,
    model: Model = None,
    engine: EngineOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows with the same rewards searched together.")] = 8,
    ray: Annotated[bool, typer.Option("--ray", help="Run on Ray (Ray Data over an actor pool of replicas).")] = False,
    address: Annotated[
        Optional[str],
        typer.Option(help="With --ray: the cluster to join (`auto`, `HOST:6379`, `ray://HOST:10001`); default "
                          "$RAY_ADDRESS, else a new local cluster."),
    ] = None,
    replicas: Annotated[
        Optional[int], typer.Option(min=1, help="With --ray: model replicas (actors). [default: 1]")
    ] = None,
    num_cpus: Annotated[float, typer.Option(min=0, help="With --ray: CPUs per replica.")] = 1,
    num_gpus: Annotated[float, typer.Option(min=0, help="With --ray: GPUs per replica (e.g. 1).")] = 0,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Run again the rows OUT holds as errors.")
    ] = False,
    **search: Any,
) -> None:
    """Align every row of a JSONL file, here or on a Ray cluster; a failed row is written with its error."""
    from deal_core.jobs import RAY_EXTRA, ray_available, run_batch
    from deal_core.rewards import rewards_from_cli

    _use_engine(engine)
    if not ray and (address is not None or replicas is not None or num_gpus or num_cpus != 1):
        fail("--address, --replicas, --num-cpus and --num-gpus are for Ray runs: add --ray")
    if ray and not ray_available():
        fail(f"--ray needs Ray (Ray Data and Ray Serve): {RAY_EXTRA}")
    settings = given(DeALConfig, search)
    specs = rewards_from_cli(reward or []).spec() if reward else None
    report = run_batch(in_path, out_path, model=model, reward_specs=specs, settings=settings, batch_size=batch_size,
                       ray=ray, address=address,
                       replicas=replicas or 1, num_cpus=num_cpus, num_gpus=num_gpus, retry_errors=retry_errors)
    sys.stderr.write(report.line() + "\n")


@app.command()
@with_options(options(ServerLimits))
def serve(
    model: Annotated[Optional[str], typer.Option(help="HF id or local path (default: embedded SmolLM2).")] = None,
    engine: EngineOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    reward: Annotated[
        Optional[list[str]],
        typer.Option("--reward", help="Server-wide default reward NAME[=ARG][:WEIGHT], repeatable (a request's own "
                                      "`deal.rewards` replace them)."),
    ] = None,
    pin_reward: Annotated[
        Optional[list[str]],
        typer.Option("--pin-reward", help="Operator reward NAME[=ARG][:WEIGHT] that always applies, repeatable: a "
                                          "request may add rewards, never drop these (e.g. --pin-reward safety)."),
    ] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Serve on Ray Serve (cluster: $RAY_ADDRESS, else a new local "
                                                    "one).")] = False,
    replicas: Annotated[Optional[int], typer.Option(min=1, help="With --ray: model replicas. [default: 1]")] = None,
    batching: Annotated[bool, typer.Option(help="Concurrent requests share forward passes (continuous batching); "
                                                "--no-batching makes them take turns.")] = True,
    isolate_calls: Annotated[bool, typer.Option("--isolate-calls", help=ISOLATE_HELP)] = False,
    **limit_options: Any,
) -> None:
    """Serve an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health). Every limit
    below holds per request; a request over one gets a 400 naming it."""
    from deal_core.rewards import rewards_from_cli

    _use_engine(engine)
    if missing := [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]:
        fail(f"deal serve needs {' and '.join(missing)}: pip install 'deal-align[server]'")
    if replicas is not None and not ray:
        fail("--replicas is for Ray Serve: add --ray")
    try:
        limits = ServerLimits(**given(ServerLimits, limit_options))
    except ValidationError as exc:
        fail(f"invalid server limits: {describe_validation_error(exc)}")
    rewards, pinned = rewards_from_cli(reward or []), rewards_from_cli(pin_reward or [])
    if ray and pinned.terms:
        fail("--pin-reward is not supported with --ray yet: serve without --ray, or use --reward")
    if ray:
        from deal_core.jobs.ray_serve import require_serve, serve_forever

        require_serve()
        serve_forever(model=model, host=host, port=port, reward_specs=rewards.spec() if rewards.terms else None,
                      replicas=replicas or 1, limits=limits.model_dump())
        return
    from deal_core.serving import serve as run_server

    run_server(model=model, host=host, port=port, rewards=rewards if rewards.terms else None, batching=batching,
               limits=limits, pinned=pinned if pinned.terms else None, isolate_calls=isolate_calls)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: click's usage errors and this library's errors become one line and exit status 2."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight load is noise on a terminal (ours show progress instead)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="deal", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # click's usage errors: unknown option, bad value, missing argument
        if not exc.format_message():  # `deal` alone: the help was printed
            raise SystemExit(2) from None
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        fail(exc.format_message() + hint)
    except DeALError as exc:
        if _DEBUG["on"]:
            raise
        fail(str(exc))
    except Exception as exc:
        if _DEBUG["on"]:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run `deal --debug …` for the traceback and report it)")
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
