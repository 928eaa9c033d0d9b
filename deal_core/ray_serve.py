"""Moved to `deal_core.jobs.ray_serve`. This module stays so that `deal_core.ray_serve.deployment(...)` keeps
working; new code imports `deal_core.jobs.ray_serve`."""

from deal_core.jobs.ray_serve import REPLICA_HEADER, deployment, require_serve, serve_forever, start

__all__ = ["REPLICA_HEADER", "deployment", "require_serve", "serve_forever", "start"]
