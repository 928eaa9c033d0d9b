"""IN, the input file of `deal batch`: one JSON object per line, each validated (with its file and line) before any
model loads.

A row is `{"id": 1, "prompt": "..."}` or `{"id": "a", "messages": [{"role": "user", "content": "..."}]}`, with an
optional `"rewards": [{"name": "keywords", "keywords": ["dog"], "weight": 1.0}]` (JSON specs, read through the
reward registry: only registered rewards can be named) that replaces the job's default rewards for that row.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deal_core.errors import DeALError, check_text, short_repr

ROW_KEYS = ("id", "prompt", "messages", "rewards")


class BatchInputError(DeALError, ValueError):
    """A line of the input (or output) file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class BatchRow:
    """One validated input row: `prompt` is a string or a list of messages; `rewards` None means the defaults."""

    line: int
    id: str | int
    prompt: str | list[dict[str, Any]]
    rewards: list[dict[str, Any]] | None = None

    @property
    def group(self) -> str:
        """Rows with the same group share their rewards and can run in one batched search."""
        return "default" if self.rewards is None else json.dumps(self.rewards, sort_keys=True)

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "rewards": self.rewards}


def id_key(row_id: Any) -> str:
    """Ids compare by their JSON form: the int 1 and the string "1" are different rows."""
    return json.dumps(row_id)


def _row(path: Path, line: int, text: str) -> BatchRow:
    from deal_core.request import Request
    from deal_core.rewards import rewards_from_json

    where = f"{path}:{line}"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BatchInputError(f"{where} is not valid JSON ({exc}): write one JSON object per line") from None
    if not isinstance(data, dict):
        raise BatchInputError(f'{where} must be a JSON object like {{"id": 1, "prompt": "..."}}, '
                              f"got {short_repr(data)}")
    unknown = sorted(set(data) - set(ROW_KEYS))
    if unknown:
        raise BatchInputError(f"{where} has unknown key(s) {', '.join(map(short_repr, unknown))}: a row may hold "
                              f"only {', '.join(ROW_KEYS)}")
    row_id = data.get("id")
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
        raise BatchInputError(f'{where} needs an "id" that is a non-empty string or an integer, '
                              f"got {short_repr(row_id)}")
    try:
        if isinstance(row_id, str):
            check_text(row_id, "id")
        has_prompt, has_messages = "prompt" in data, "messages" in data
        if has_prompt == has_messages:
            raise BatchInputError(f'{where} (id {short_repr(row_id)}) needs exactly one of "prompt" (a string) '
                                  f'or "messages" (a list of chat messages)')
        prompt = data["prompt"] if has_prompt else data["messages"]
        if has_prompt and not isinstance(prompt, str):
            raise BatchInputError(f'{where} (id {short_repr(row_id)}): "prompt" must be a string, got '
                                  f'{short_repr(prompt)}; put chat turns in "messages"')
        if has_messages and not isinstance(prompt, list):
            raise BatchInputError(f'{where} (id {short_repr(row_id)}): "messages" must be a list of '
                                  f'{{"role", "content"}} objects, got {short_repr(prompt)}')
        Request.of(prompt)  # roles, content, lone surrogates: checked here, before any model loads
        rewards = data.get("rewards")
        if rewards is not None:
            rewards_from_json(rewards)  # only registered rewards, each field validated
    except BatchInputError:
        raise
    except DeALError as exc:
        raise BatchInputError(f"{where} (id {short_repr(row_id)}): {exc}") from None
    return BatchRow(line=line, id=row_id, prompt=prompt, rewards=rewards)


def read_rows(path: str | os.PathLike) -> list[BatchRow]:
    """Every row of a JSONL input file, validated; blank lines are skipped; ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise BatchInputError(f"input file {str(path)!r} does not exist; pass an existing JSONL file")
    rows: list[BatchRow] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="strict") as lines:
        try:
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                row = _row(path, number, text)
                key = id_key(row.id)
                if key in seen:
                    raise BatchInputError(f"{path}:{number} repeats id {short_repr(row.id)} (first on line "
                                          f"{seen[key]}): every row needs its own id")
                seen[key] = number
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise BatchInputError(f"{path} is not UTF-8 text ({exc}): save it as UTF-8") from None
    if not rows:
        raise BatchInputError(f"{path} holds no rows: write one JSON object per line")
    return rows
