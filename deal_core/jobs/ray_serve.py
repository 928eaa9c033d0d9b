"""`deal serve --ray --replicas N`: the `deal serve` application (`deal_core.serving.create_app`, unchanged) as a
Ray Serve deployment, N replicas behind one HTTP endpoint.

Each replica is a Ray actor that builds the FastAPI app (and so loads the model) once, when Ray starts it:
`@serve.ingress` is given a builder function, which Ray Serve calls on the replica. Ray Serve's proxy routes each
request to a replica with room (`max_ongoing_requests`); inside a replica, concurrent requests share the model as
they do under `deal serve`. Every response carries an `x-deal-replica` header naming the replica that answered.
"""

from __future__ import annotations

from typing import Any

from deal_core.errors import ConfigError
from deal_core.jobs.ray_cluster import RAY_EXTRA, RayMissingError, connect_ray, disconnect_ray

REPLICA_HEADER = "x-deal-replica"


def require_serve() -> None:
    import importlib.util

    missing = [m for m in ("ray", "fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing or importlib.util.find_spec("ray.serve") is None:
        raise RayMissingError(f"deal serve --ray needs Ray Serve: {RAY_EXTRA}")


def deployment(model: str | None = None, reward_specs: list[dict[str, Any]] | None = None,
               limits: dict[str, Any] | None = None, replicas: int = 1, num_cpus: float = 1, num_gpus: float = 0,
               max_ongoing_requests: int = 32) -> Any:
    """The bound Ray Serve application: `replicas` copies of the DeAL server, `num_cpus`/`num_gpus` each.
    `reward_specs` are the server-wide default rewards (JSON specs), `limits` the `ServerLimits` fields."""
    require_serve()
    from ray import serve

    from deal_core.rewards import rewards_from_json
    from deal_core.serving import ServerLimits

    if replicas < 1 or max_ongoing_requests < 1 or num_cpus < 0 or num_gpus < 0:
        raise ConfigError(f"replicas ({replicas}) and max_ongoing_requests ({max_ongoing_requests}) must be >= 1, "
                          f"num_cpus ({num_cpus}) and num_gpus ({num_gpus}) >= 0")
    if reward_specs is not None:
        rewards_from_json(reward_specs)  # bad specs fail here, not in every replica
    limit_fields = ServerLimits(**(limits or {})).model_dump()

    def build_app() -> Any:
        """Runs on each replica, once: load the model and build the same app `deal serve` runs."""
        from transformers.utils import logging as hf_logging

        from deal_core.serving import ServerLimits, create_app

        hf_logging.disable_progress_bar()
        rewards = None if reward_specs is None else rewards_from_json(reward_specs)
        app = create_app(model=model, rewards=rewards, limits=ServerLimits(**limit_fields))
        replica = serve.get_replica_context().replica_id.unique_id

        @app.middleware("http")
        async def name_the_replica(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            return response

        return app

    class DeALServer:
        """A DeAL server replica (its routes are the app `build_app` returns)."""

    server = serve.deployment(
        serve.ingress(build_app)(DeALServer), name="DeAL", num_replicas=replicas,
        max_ongoing_requests=max_ongoing_requests, ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
    )
    return server.bind()


def start(model: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          reward_specs: list[dict[str, Any]] | None = None, replicas: int = 1, address: str | None = None,
          **options: Any) -> str:
    """Connect to (or start) a Ray cluster, start Ray Serve's HTTP proxy on host:port and deploy the app; returns
    once every replica has loaded its model. Returns the base URL."""
    app = deployment(model, reward_specs, replicas=replicas, **options)
    from ray import serve

    connect_ray(address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name="deal", route_prefix="/")
    return f"http://{host}:{port}"


def serve_forever(**options: Any) -> None:
    """`deal serve --ray`: run until interrupted (Ctrl-C or SIGTERM), then remove the app and leave the cluster
    (a cluster this call started stops with it)."""
    import contextlib
    import time

    import ray
    from ray import serve

    try:
        url = start(**options)
        print(f"DeAL on Ray Serve: {options.get('replicas', 1)} replica(s) at {url}/v1 (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if ray.is_initialized():
            with contextlib.suppress(Exception):  # Serve may not have started
                serve.delete("deal")
            disconnect_ray()
