"""Berkeley Function Calling Leaderboard rows (`simple_python`, `multiple`) and BFCL's AST rule for one prediction.

`load_bfcl(split)` reads `bfcl_{split}_dev.jsonl` (`--data FILE` wins, then `$DEAL_DATA_DIR`, then the shipped file;
source and licence in `files/README.md`) into typed `BfclRow`s: the first turn of the question, the offered functions
both as BFCL wrote them and as OpenAI-style tools whose parameters are valid JSON Schema, and the ground truth.

`check_calls(calls, row)` scores the calls a model made the way BFCL's AST checker does (Python rules):

- the number of calls and their function names must be the ground truth's (one call for both splits);
- every parameter the schema requires is given, and no parameter outside both the schema and the ground truth;
- a value's type must be the schema's (`integer` -> int, `float` -> float, `string`/`any` -> str, `boolean` -> bool,
  `array`/`tuple` -> list, `dict` -> dict; an int is accepted, as a float, where `float` is expected, but not inside
  arrays), or else the type of the ground truth's accepted values;
- the value must be among the accepted ones: strings compare after removing spaces and `,./-_*^`, lowering case and
  turning `'` into `"`; lists compare element-wise (their string elements normalised the same way, order kept);
  dicts compare key by key against an accepted dict of accepted values (keys whose accepted values hold `""` may
  be left out); a list of dicts compares dict by dict, in order;
- a ground-truth argument whose accepted values hold `""` may be omitted; any other must be given.

`tools_of(row)` gives the row's functions as `deal_core.request.Tool`s.

By part: `rows.py` (the rows, loaded and checked; as tools), `schema.py` (BFCL specs as JSON Schema), `check.py`
(the AST checker).
"""

from deal_core.bench.bfcl.check import MAX_VALUE_DEPTH, PYTHON_TYPES, CallCheck, check_calls, standardize
from deal_core.bench.bfcl.rows import SPLITS, TOOL_NAME, BfclFunction, BfclRow, ExpectedCall, load_bfcl, tools_of
from deal_core.bench.bfcl.schema import JSON_SCHEMA_TYPES, json_schema

__all__ = [
    "JSON_SCHEMA_TYPES", "MAX_VALUE_DEPTH", "PYTHON_TYPES", "SPLITS", "TOOL_NAME", "BfclFunction", "BfclRow",
    "CallCheck", "ExpectedCall", "check_calls", "json_schema", "load_bfcl", "standardize", "tools_of",
]
