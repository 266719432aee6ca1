"""The Lua scripts, each loaded from its own file (header documents KEYS/ARGV)."""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script


@cache
def source(name: str) -> str:
    return resources.files("supervisor.broker.scripts").joinpath(f"{name}.lua").read_text()


def load(client: redis.Redis, name: str) -> Script:
    """A Script bound to `client`; EVALSHA with automatic reload on NOSCRIPT."""
    return client.register_script(source(name))
