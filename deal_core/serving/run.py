"""Running the app: in a background thread for tests and embedding (`running_server`), or until interrupted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, Literal

from deal_core.rewards import RewardSum
from deal_core.serving.app import create_app
from deal_core.serving.limits import ServerLimits


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread (port 0: a free one); yields its base URL, stops on exit."""
    import socket
    import threading

    import uvicorn

    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          rewards: RewardSum | None = None, log_level: Literal["info", "warning"] = "info",
          batching: bool = True, limits: ServerLimits | None = None, pinned: RewardSum | None = None,
          isolate_calls: bool = False) -> None:
    """Run the server until interrupted."""
    import uvicorn

    app = create_app(model=model, rewards=rewards, batching=batching, limits=limits, pinned=pinned,
                     isolate_calls=isolate_calls)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
