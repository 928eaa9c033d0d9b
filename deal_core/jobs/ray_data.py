"""`deal batch --ray`: the chunks become the rows of a Ray Data dataset mapped by `map_batches` over a fixed pool
of actors, each holding one loaded model (`DeALReplica`); results are identical to the local run (`tests/ray`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from deal_core.config import DeALConfig, make_config
from deal_core.jobs.chunks import run_chunk
from deal_core.jobs.ray_cluster import replica_error
from deal_core.jobs.rows import BatchRow


class DeALReplica:
    """One model replica, the Ray Data actor class of `map_batches`: the model loads once, in the constructor; each
    call takes a batch of chunks (JSON lists of row payloads) and returns their results as JSON lists."""

    def __init__(self, model: str | None, config: dict[str, Any], reward_specs: list[dict[str, Any]] | None):
        from transformers.utils import logging as hf_logging

        from deal_core.decoder import DeAL
        from deal_core.rewards import rewards_from_json

        hf_logging.disable_progress_bar()
        self.deal = DeAL(model, rewards=rewards_from_json(reward_specs or []), config=make_config(**config))

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[str]]:
        return {"results": [json.dumps(run_chunk(self.deal, json.loads(str(c))), ensure_ascii=False)
                            for c in batch["chunk"]]}


def ray_results(chunk_list: list[list[BatchRow]], model: str | None, config: DeALConfig,
                reward_specs: list[dict[str, Any]] | None, replicas: int, num_cpus: float,
                num_gpus: float) -> Iterator[list[dict[str, Any]]]:
    """Each chunk's results, as the actors finish them (the connected Ray cluster runs them)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job's own bar counts rows
    items = [{"chunk": json.dumps([r.payload() for r in chunk], ensure_ascii=False)} for chunk in chunk_list]
    # one block per chunk (up to 1,000): a block is what one actor takes at a time, so small blocks spread the work
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), 1000)).map_batches(
        DeALReplica, batch_size=1, compute=ray.data.ActorPoolStrategy(size=replicas),
        num_cpus=num_cpus, num_gpus=num_gpus,
        fn_constructor_kwargs={"model": model, "config": config.model_dump(mode="json"),
                               "reward_specs": reward_specs},
    )
    try:
        for item in dataset.iter_rows():
            yield json.loads(item["results"])
    except Exception as exc:
        cause = replica_error(exc)
        if cause is None:
            raise
        raise cause from exc
