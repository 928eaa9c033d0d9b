"""llama.cpp's low-level bindings (llama-cpp-python), loaded once with bounded OpenMP spinning.

Between operations llama.cpp's OpenMP threads wait for each other. How they wait decides the speed, measured here
with llama-cpp-python's own greedy loop on the embedded model, 2 threads, 2-core machine (ms per token):

    wait policy                     idle   2 busy processes   6 busy processes
    OMP_WAIT_POLICY=PASSIVE (sleep)  38          60-93             120-130
    libgomp default / ACTIVE (spin)  11          25-29 / 49-414    > 60 000 (a spinning thread waits for one that
                                                                   is not scheduled)
    GOMP_SPINCOUNT=5000              11          -                 87

A bounded spin costs nothing on an idle machine and cannot starve a busy one. It is read once, when llama.cpp's
OpenMP runtime loads: it is set before (a value already in the environment wins).
"""

import os

os.environ.setdefault("GOMP_SPINCOUNT", "5000")

import llama_cpp as C  # noqa: E402 - after the OpenMP setting

__all__ = ["C"]
