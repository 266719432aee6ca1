"""Redis Sentinel: connections that always reach the current master, and follow a failover.

Three things keep writes off a demoted master (the Sentinel client spec):

- every connection asks the sentinels for the master's address when it
  connects (redis-py's SentinelManagedConnection) and then checks `ROLE` on
  the server it reached: a server that is not (or no longer) master is left
  at once and the sentinels are asked again;
- a `READONLY` reply on a master connection drops it (redis-py turns it into
  a ConnectionError, which every caller already retries);
- a watcher thread per client is subscribed to the sentinels' `+switch-master`
  channel: on a switch it invalidates every connection of the process, the
  hot path's included (direct.invalidate), so the next command goes to the
  new master instead of the old one during the seconds before the old one is
  demoted.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import redis
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

import supervisor.redis_url as urls
from supervisor.broker import direct

log = logging.getLogger("supervisor.topology")

# `+promoted-slave` comes first (the chosen replica reports role master; the
# sentinels already name it), `+switch-master` once the other replicas are
# reconfigured, which may be seconds later: both are followed.
SWITCH_CHANNEL = "+switch-master"
PROMOTED_CHANNEL = "+promoted-slave"


class NotMaster(redis.exceptions.ConnectionError):
    """The server the sentinels named is not master (yet or any more): ask them again."""


class _RoleChecked:
    """Mixin: after the handshake, ROLE must say master, else leave this server."""

    connection_pool: Any
    host: str
    port: int

    def on_connect_check_health(self, check_health: bool = True) -> None:
        super().on_connect_check_health(check_health)  # type: ignore[misc]
        self.send_command("ROLE")  # type: ignore[attr-defined]
        role = self.read_response()  # type: ignore[attr-defined]
        if not role or str(role[0]) != "master":
            self.disconnect()  # type: ignore[attr-defined]
            self.connection_pool.reset()  # forget the address: ask the sentinels again
            raise NotMaster(f"{self.host}:{self.port} is {role[0] if role else 'unknown'}, "
                            "not master (a failover under way): asking the sentinels again")


class MasterConnection(_RoleChecked, SentinelManagedConnection):
    pass


class MasterSSLConnection(_RoleChecked, SentinelManagedSSLConnection):
    pass


def _data_options(found: urls.Deployment, url: str) -> dict[str, Any]:
    """The data servers' connection options of a Sentinel URL, as redis-py parses them."""
    from urllib.parse import quote, urlencode

    host, port = found.hosts[0]
    params = [(k, v) for k, v in found.params if k not in urls.SENTINEL_PARAMETERS]
    user = quote(found.username or "", safe="")
    auth = f"{user}:{quote(found.password, safe='')}@" if found.password is not None else \
        (f"{user}@" if user else "")
    scheme = "rediss" if found.tls else "redis"
    plain = f"{scheme}://{auth}{host}:{port}/{found.db}" + (f"?{urlencode(params)}"
                                                           if params else "")
    options: dict[str, Any] = redis.connection.parse_url(plain)
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    return options


def _sentinel_options(found: urls.Deployment, socket_timeout: float) -> dict[str, Any]:
    """How to talk to the sentinels themselves: their own user/password, TLS like the data."""
    params = dict(found.params)
    options: dict[str, Any] = {"socket_timeout": min(socket_timeout, 2.0),
                               "socket_connect_timeout": 1.0, "decode_responses": True}
    if params.get("sentinel_password"):
        options["password"] = params["sentinel_password"]
    if params.get("sentinel_username"):
        options["username"] = params["sentinel_username"]
    if found.tls:
        options["ssl"] = True
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"):
            if name in params:
                options[name] = params[name]
    return options


def master_client(url: str, **options: Any) -> redis.Redis:
    """A client of the current master of a `redis+sentinel://` URL, following failovers."""
    found = urls.deployment(url)
    data = {**_data_options(found, url), **options}
    watch = _sentinel_options(found, float(options.get("socket_timeout") or 10.0))
    manager = Sentinel(list(found.hosts), sentinel_kwargs=dict(watch),
                       socket_timeout=data.get("socket_timeout"))
    manager.discover_master = _MasterLookup(manager)  # type: ignore[method-assign]
    connection_class = MasterSSLConnection if data.pop("ssl", False) else MasterConnection
    # A connection's address before the sentinels name the master: port 0
    # refuses at once, so a path that skipped the lookup fails loudly instead
    # of writing to whatever listens on redis-py's default localhost:6379.
    data.update(host="127.0.0.1", port=0)
    client = manager.master_for(found.master_name, redis_class=redis.Redis,
                                connection_pool_class=SentinelConnectionPool,
                                connection_class=connection_class, **data)
    SwitchWatcher(found, watch, client.connection_pool).start()
    return client


class _MasterLookup:
    """Where the master is, by `SENTINEL GET-MASTER-ADDR-BY-NAME`.

    redis-py asks `SENTINEL MASTERS`, whose address moves only at
    `+switch-master`, seconds after the promotion; this one names the promoted
    replica as soon as it is master, so nothing is written to the old master
    meanwhile. The sentinel that answered is asked first next time.
    """

    def __init__(self, manager: Sentinel) -> None:
        self.manager = manager

    def __call__(self, service_name: str) -> tuple[str, int]:
        sentinels = self.manager.sentinels
        for index, sentinel in enumerate(sentinels):
            try:
                found: Any = sentinel.sentinel_get_master_addr_by_name(service_name)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                continue
            if found:
                sentinels[0], sentinels[index] = sentinel, sentinels[0]
                return str(found[0]), int(found[1])
        raise MasterNotFoundError(f"no sentinel names a master {service_name!r}")


class SwitchWatcher(threading.Thread):
    """Follows `+switch-master` of one master name, for as long as its pool lives."""

    def __init__(self, found: urls.Deployment, options: dict[str, Any],
                 pool: SentinelConnectionPool) -> None:
        super().__init__(name=f"sentinel-watch-{found.master_name}", daemon=True)
        self.hosts = list(found.hosts)
        self.master_name = found.master_name
        self.options = options
        self.pool = weakref.ref(pool)  # the thread ends once the client is gone
        self.known: tuple[str, int] | None = None

    def run(self) -> None:
        turn = 0
        while self.pool() is not None:
            host, port = self.hosts[turn % len(self.hosts)]
            turn += 1
            try:
                self._follow(host, port)
            except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                log.debug("sentinel watch %s:%d: %r", host, port, exc)
                # That sentinel is away: the next one is asked; meanwhile
                # connections still check ROLE, so nothing goes astray.
                pool = self.pool()
                if pool is None:
                    return
                threading.Event().wait(0.2)

    def _follow(self, host: str, port: int) -> None:
        sentinel = redis.Redis(host=host, port=port, **self.options)
        pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(SWITCH_CHANNEL, PROMOTED_CHANNEL)
            # A switch may have happened while no sentinel was followed:
            # compare with what the sentinel says now.
            found: Any = sentinel.sentinel_get_master_addr_by_name(self.master_name)
            if found:
                self._switched((str(found[0]), int(found[1])))
            while self.pool() is not None:
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                self._event(str(message.get("channel", "")), str(message.get("data", "")))
        finally:
            pubsub.close()
            sentinel.close()

    def _event(self, channel: str, data: str) -> None:
        parts = data.split()
        # +switch-master: "<name> <old ip> <old port> <new ip> <new port>"
        if channel == SWITCH_CHANNEL and len(parts) == 5 and parts[0] == self.master_name:
            self._switched((parts[3], int(parts[4])))
        # +promoted-slave: "slave <ip:port> <ip> <port> @ <name> <old ip> <old port>"
        elif channel == PROMOTED_CHANNEL and len(parts) == 8 and parts[5] == self.master_name:
            self._switched((parts[2], int(parts[3])))

    def _switched(self, address: tuple[str, int]) -> None:
        if address == self.known:
            return
        first = self.known is None
        self.known = address
        pool = self.pool()
        if first or pool is None:
            return
        log.warning("Redis Sentinel: master %r is now %s:%d; reconnecting there",
                    self.master_name, *address)
        # Every connection made before goes: the hot path's per-thread ones on
        # their next command, the pool's idle ones now.
        direct.invalidate()
        pool.disconnect(inuse_connections=False)
