"""What a `deal batch` job shows: a progress bar over its rows while it runs, a `BatchReport` when it ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchReport:
    """What one `run_batch` call did."""

    rows: int  # rows in the input
    skipped: int  # already in OUT
    written: int = 0
    errors: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    first_result_s: float | None = None  # start-up cost: model load (and, on Ray, actor start) plus one chunk
    first_rows: int = 0  # rows of that first chunk
    mode: str = "local"
    replicas: int = 1
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.written / self.wall_s if self.wall_s else 0.0

    @property
    def steady_rows_per_s(self) -> float:
        """Rows/s after the first chunk: what a long job approaches once the start-up is paid."""
        if self.first_result_s is None or self.wall_s <= self.first_result_s:
            return 0.0
        return (self.written - self.first_rows) / (self.wall_s - self.first_result_s)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0

    def count(self, result: dict[str, Any], keep: bool) -> None:
        """One result row written to OUT (kept in `results` too when `keep`)."""
        self.written += 1
        self.errors += "error" in result
        self.completion_tokens += result.get("usage", {}).get("completion_tokens", 0)
        if keep:
            self.results.append(result)

    def line(self) -> str:
        where = "locally" if self.mode == "local" else f"on Ray ({self.replicas} replica{'s' * (self.replicas > 1)})"
        return (f"{self.written} rows written {where} ({self.errors} with errors, {self.skipped} already done) in "
                f"{self.wall_s:.1f} s: {self.rows_per_s:.2f} rows/s, {self.tokens_per_s:.1f} tokens/s")


class ProgressBar:
    """A rich progress bar on stderr over the rows to do (or nothing)."""

    def __init__(self, show: bool, total: int):
        self.show, self.total, self._bar = show, total, None

    def __enter__(self) -> Callable[[int], None]:
        if not self.show:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("aligning rows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=Console(stderr=True))
        self._bar.__enter__()
        task = self._bar.add_task("rows", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
