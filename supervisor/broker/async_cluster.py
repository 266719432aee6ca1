"""redis-py's asyncio RedisCluster, made able to start while one shard is down.

On its first command the asyncio client reads the slot map (from any seed
that answers) and then `COMMAND` from the first primary of that map only: if
that primary is down, the client cannot start at all, and an async producer
made while one shard is away fails every enqueue, those bound for the shards
that answer included (the sync client asks any node). Here `COMMAND` comes
from the first primary that answers.
"""

from __future__ import annotations

from typing import Any

import redis
from redis._parsers import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.cluster import PRIMARY


class _AnyPrimaryCommands(AsyncCommandsParser):
    """The command table (key positions) read from whichever primary answers."""

    def __init__(self, nodes_manager: Any) -> None:
        super().__init__()
        self._nodes_manager = nodes_manager

    async def initialize(self, node: Any = None) -> None:
        primaries = self._nodes_manager.get_nodes_by_server_type(PRIMARY)
        candidates = [node, *(other for other in primaries if other is not node)] if node \
            else primaries
        failure: BaseException | None = None
        for candidate in candidates:
            try:
                await super().initialize(candidate)
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                failure = exc
        if failure is not None:
            raise failure
        await super().initialize(node)


def async_cluster_client(hosts: list[tuple[str, int]], **options: Any) -> RedisCluster:
    """An asyncio RedisCluster over these seeds that starts while one shard is away."""
    client = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in hosts],
                          **options)
    client.commands_parser = _AnyPrimaryCommands(client.nodes_manager)
    return client
