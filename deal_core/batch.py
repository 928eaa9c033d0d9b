"""Moved to `deal_core.jobs` (one file per part: rows, output, chunks, runner, report, Ray). This module stays so
that `from deal_core.batch import run_batch` keeps working; new code imports `deal_core.jobs`."""

from deal_core import jobs as _jobs
from deal_core.jobs import *  # every public name of deal_core.jobs, as before the move

__all__ = _jobs.__all__
