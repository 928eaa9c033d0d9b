"""CLI options generated from a settings model (`DeALConfig`, `ServerLimits`): one declaration per setting.

Each field becomes `--field-name` (or the name in its `json_schema_extra={"cli": "--name"}`), typed from its
annotation, with the field's description and default as help; None means "not given". `with_options` adds them
to a typer command, which receives them as keyword arguments; `given` turns them back into field values.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Optional

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def _base(annotation: Any) -> Any:
    """The field's type without `None`: int, float, bool, str, tuple (many strings) or dict (NAME=VALUE pairs)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _base(args[0])
    origin = typing.get_origin(annotation)
    return origin if origin in (tuple, list, dict) else annotation


def cli_name(name: str, info: FieldInfo) -> str:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return str(extra.get("cli") or "--" + name.replace("_", "-"))


def option(name: str, info: FieldInfo) -> inspect.Parameter:
    """The typer parameter for one field."""
    kind, flag = _base(info.annotation), cli_name(name, info)
    default = info.default if info.default not in (None, (), {}) and not callable(info.default) else None
    help_text = (info.description or "") + (f" [default: {default}]" if default is not None else "")
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    envvar = extra.get("envvar")
    if kind is bool:
        opt = typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
        annotation: Any = Optional[bool]
    elif kind in (tuple, list, dict):
        more = " NAME=VALUE," if kind is dict else ""
        opt = typer.Option(flag, help=f"{help_text}{more} repeatable.".replace(". repeatable", "; repeatable"),
                           show_default=False, envvar=envvar, metavar="NAME=VALUE" if kind is dict else "TEXT")
        annotation = Optional[list[str]]
    else:
        opt = typer.Option(flag, help=help_text, show_default=False, envvar=envvar)
        annotation = Optional[kind]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[annotation, opt])


def options(model: type[BaseModel], fields: Iterable[str] | None = None) -> list[inspect.Parameter]:
    names = list(model.model_fields) if fields is None else list(fields)
    return [option(n, model.model_fields[n]) for n in names]


def with_options(*generated: list[inspect.Parameter]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add generated options to a command whose function takes them through `**kwargs`."""
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        params = own + [p for group in generated for p in group]
        func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        func.__annotations__ = {p.name: p.annotation for p in params}
        return func

    return decorate


def given(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """The options that were given, as field values (NAME=VALUE pairs become a dict, repeated ones a tuple)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or name not in model.model_fields:
            continue
        kind = _base(model.model_fields[name].annotation)
        if kind is dict:
            pairs = [v.partition("=") for v in value]
            bad = [v for v, (_, sep, rest) in zip(value, pairs) if not sep or not rest]
            if bad:
                raise typer.BadParameter(f"{bad[0]!r} is not NAME=VALUE", param_hint=cli_name(name,
                                         model.model_fields[name]))
            out[name] = {k: v for k, _, v in pairs}
        elif kind in (tuple, list):
            out[name] = tuple(value)
        else:
            out[name] = value
    return out
