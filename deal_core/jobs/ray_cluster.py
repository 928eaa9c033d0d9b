"""Ray for jobs: whether it is installed (the optional `ray` extra), joining or starting a cluster and leaving it,
and the library error behind a failed Ray actor."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from deal_core.errors import DeALError

# Environment a Ray worker needs to find the cached model and stay off the Hub (a remote node gets them too).
FORWARDED_ENV = ("DEAL_CACHE_DIR", "DEAL_ALLOW_DOWNLOAD", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
RAY_EXTRA = "pip install 'deal-align[ray]'"


class RayMissingError(DeALError, ImportError):
    """`--ray` was asked for but Ray (the `ray` extra) is not installed."""


class ReplicaError(DeALError, RuntimeError):
    """A Ray replica could not start (e.g. its model would not load); the message carries the replica's error."""


def replica_error(exc: BaseException) -> DeALError | None:
    """The library error behind a Ray failure: Ray hands back an actor's failed start as text, so this finds the
    last `deal_core…Error: message` line in it."""
    import re

    if isinstance(exc, DeALError):
        return exc
    found = re.findall(r"deal_core(?:\.\w+)*\.(\w+(?:Error|Timeout)): ([^\n]+)", str(exc))
    if not found:
        return None
    name, message = found[-1]
    return ReplicaError(f"a Ray replica failed: {name}: {message}")


def ray_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("ray", "ray.data"))


def require_ray() -> None:
    if not ray_available():
        raise RayMissingError(f"--ray needs Ray (Ray Data and Ray Serve): {RAY_EXTRA}")


def connect_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address` (None: start a local one, or join `$RAY_ADDRESS`); no-op when this process
    is already connected. Returns True when this call connected (so the caller disconnects)."""
    require_ray()
    import ray

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    options: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
    options["logging_level"] = logging.WARNING  # Ray's start-up chatter (the job shows its own progress)
    if address in (None, "", "local"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    else:
        ray.init(address=address, **options)
    if threading.current_thread() is threading.main_thread():
        # Ray's core aborts the process on SIGTERM; end like Ctrl-C instead, so `disconnect_ray` runs and a
        # cluster this process started does not outlive it
        _SIGTERM["previous"] = signal.signal(signal.SIGTERM, _interrupt)
    return True


_SIGTERM: dict[str, Any] = {}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def disconnect_ray() -> None:
    """Leave the cluster `connect_ray` joined (stopping it if it started it) and restore the SIGTERM handler."""
    import ray

    ray.shutdown()
    previous = _SIGTERM.pop("previous", None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
