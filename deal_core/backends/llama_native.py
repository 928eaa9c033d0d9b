"""llama.cpp's low-level bindings (llama-cpp-python), loaded once with passive OpenMP waiting.

llama.cpp's OpenMP threads spin between operations by default; on a shared or busy CPU a spinning thread waits for
one that is not scheduled, and a token can cost 50× more (measured here: 2.3 s instead of 45 ms per step on a
loaded 2-core machine). Passive waiting is read once, when llama.cpp's OpenMP runtime loads: it is set before.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import llama_cpp as C  # noqa: E402 - after the OpenMP setting

__all__ = ["C"]
