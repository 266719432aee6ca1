"""Redis Sentinel for the async producer: redis.asyncio connections to the current master.

The same three rules as the sync side (broker/sentinel.py), on redis.asyncio:

- every connection asks the sentinels for the master when it connects
  (`SENTINEL GET-MASTER-ADDR-BY-NAME`, none while a failover is under way)
  and checks `ROLE` on the server it reached; a server that is not master is
  left at once (NotMaster, a ConnectionError the producer retries);
- a `READONLY` reply drops the connection (redis-py's async
  SentinelManagedConnection turns it into a ConnectionError);
- the sync module's watcher threads follow the sentinels' events
  (`+try-failover`, `+promoted-slave`, `+switch-master`): a thread cannot
  close an event loop's sockets, so it bumps `Failover.generation`, and each
  connection made under an older generation closes itself before its next
  command and reconnects to the master the sentinels name now.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

import supervisor.redis_url as urls
from supervisor.broker.sentinel import (
    FIRST_LOOK_WAIT,
    Failover,
    NotMaster,
    SwitchWatcher,
    _data_options,
    _sentinel_options,
)


class _AsyncRoleChecked:
    """Mixin: ROLE must say master after the handshake; a failover since the connect
    (a newer Failover.generation) closes the connection before its next command."""

    connection_pool: Any
    host: str
    port: int
    _generation = -1

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        self._generation = self.connection_pool.failover.generation
        await super().on_connect_check_health(check_health)  # type: ignore[misc]
        await self.send_command("ROLE")  # type: ignore[attr-defined]
        role = await self.read_response()  # type: ignore[attr-defined]
        if not role or str(role[0]) != "master":
            await self.disconnect()  # type: ignore[attr-defined]
            self.connection_pool.reset()  # forget the address: ask the sentinels again
            raise NotMaster(f"{self.host}:{self.port} is {role[0] if role else 'unknown'}, "
                            "not master (a failover under way): asking the sentinels again")

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if (self.is_connected  # type: ignore[attr-defined]
                and self._generation != self.connection_pool.failover.generation):
            await self.disconnect()  # type: ignore[attr-defined]
        if not self.is_connected:  # type: ignore[attr-defined]
            # Through the sentinels: the base class would reconnect to the address
            # this connection last had (the old master).
            await self.connect()  # type: ignore[attr-defined]
        await super().send_packed_command(command, check_health)  # type: ignore[misc]


class AsyncMasterConnection(_AsyncRoleChecked, SentinelManagedConnection):
    pass


class AsyncMasterSSLConnection(_AsyncRoleChecked, SentinelManagedSSLConnection):
    pass


class _AsyncMasterLookup:
    """The master's address by `SENTINEL GET-MASTER-ADDR-BY-NAME` (as the sync
    _MasterLookup: the promoted replica at once, nothing during a failover)."""

    def __init__(self, manager: Sentinel, failover: Failover) -> None:
        self.manager = manager
        self.failover = failover

    async def __call__(self, service_name: str) -> tuple[str, int]:
        if not self.failover.looked.is_set():  # the first connection: see sentinel.py
            await asyncio.to_thread(self.failover.looked.wait, FIRST_LOOK_WAIT)
        self.failover.check_not_under_way(service_name)
        sentinels = self.manager.sentinels
        for index, sentinel in enumerate(sentinels):
            try:
                found: Any = await sentinel.sentinel_get_master_addr_by_name(service_name)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                continue
            if found and self.failover.agrees((str(found[0]), int(found[1]))):
                sentinels[0], sentinels[index] = sentinel, sentinels[0]
                return str(found[0]), int(found[1])
        return self.failover.event_master(service_name)


def async_master_client(url: str, **options: Any) -> redis.asyncio.Redis:
    """A redis.asyncio client of the current master of a `redis+sentinel://` URL."""
    found = urls.deployment(url)
    data = {**_data_options(found, url), **options}
    watch = _sentinel_options(found, float(options.get("socket_timeout") or 10.0))
    manager = Sentinel(list(found.hosts), sentinel_kwargs=dict(watch),
                       socket_timeout=data.get("socket_timeout"))
    connection_class = AsyncMasterSSLConnection if data.pop("ssl", False) else \
        AsyncMasterConnection
    data.update(host="127.0.0.1", port=0)  # see sentinel.master_client: refuses at once
    client = manager.master_for(found.master_name, redis_class=redis.asyncio.Redis,
                                connection_pool_class=SentinelConnectionPool,
                                connection_class=connection_class, **data)
    pool: Any = client.connection_pool
    failover = Failover(found.master_name, pool, sync_pool=False, watchers=len(found.hosts))
    pool.failover = failover  # read by the connections (through their pool's proxy)
    manager.discover_master = _AsyncMasterLookup(manager, failover)  # type: ignore[method-assign]
    for host, port in found.hosts:
        SwitchWatcher(host, port, watch, failover).start()
    return client
