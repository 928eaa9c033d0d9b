"""llama.cpp's low-level bindings (llama-cpp-python), loaded once with bounded OpenMP spinning.

Between operations llama.cpp's OpenMP threads wait for each other. How they wait decides the speed, measured here
with llama-cpp-python's own greedy loop on the embedded model, 2 threads, 2-core machine (ms per token):

    wait policy                       idle   2 busy loops   6 busy loops   3 torch processes (their threads spin)
    OMP_WAIT_POLICY=PASSIVE (sleep)    38       60-93          120-130        40-110
    libgomp default (spin, then sleep) 11       25-29          > 60 000       -
    GOMP_SPINCOUNT=5000 (the default)  11       -              87             145
    (1 thread: 19 idle, 40 next to the torch processes)

A bounded spin costs nothing on an idle machine and cannot hang on a busy one; next to other processes whose threads
spin, sleeping waits better: set `OMP_WAIT_POLICY=PASSIVE` (or `GOMP_SPINCOUNT=0`) there. The setting is read once,
when llama.cpp's OpenMP runtime loads: it is set before (a value already in the environment wins).
"""

import os

os.environ.setdefault("GOMP_SPINCOUNT", "5000")

import llama_cpp as C  # noqa: E402 - after the OpenMP setting

__all__ = ["C"]
