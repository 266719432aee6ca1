"""The Lua scripts, each loaded from its own file (header documents KEYS/ARGV)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

INCLUDE = "--! include "


@cache
def source(name: str) -> str:
    """A script's text, with each `--! include <fragment>` line replaced by that fragment
    (Lua shared by scripts: wfops.lua, the workflow operations; limit_release.lua, the
    freeing of concurrency slots)."""
    text = resources.files("supervisor.broker.scripts").joinpath(f"{name}.lua").read_text()
    if INCLUDE not in text:
        return text
    return "\n".join(source(line[len(INCLUDE):].strip()) if line.startswith(INCLUDE) else line
                     for line in text.splitlines())


def load(client: redis.Redis, name: str) -> Script:
    """A Script bound to `client`; EVALSHA with automatic reload on NOSCRIPT."""
    if isinstance(client, RedisCluster):
        return ShardScript(client, source(name))
    return client.register_script(source(name))


class ShardScript(Script):
    """redis-py's Script for a cluster, but a NOSCRIPT loads the script on the master of
    its keys' slot only: redis-py's loads it on every master, and fails for all of them
    when one shard is down."""

    def __call__(self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None,
                 client: Any = None) -> Any:
        client = client or self.registered_client
        keys, args = list(keys or ()), list(args or ())
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            if not keys:
                raise
            client.execute_command("SCRIPT", "LOAD", self.script,
                                   target_nodes=client.get_node_from_key(keys[0]))
            return client.evalsha(self.sha, len(keys), *keys, *args)
