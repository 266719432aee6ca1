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
  demoted;
- a process that starts while a failover is under way never saw its
  `+try-failover`: each watcher, once subscribed, asks its sentinel whether it
  is failing the master over (`SENTINEL MASTER` flags) and pauses the writes
  if so, and a client's first connection waits (briefly) for that first look.
"""

from __future__ import annotations

import logging
import threading
import time
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

    connection_class = MasterSSLConnection if data.pop("ssl", False) else MasterConnection
    # A connection's address before the sentinels name the master: port 0
    # refuses at once, so a path that skipped the lookup fails loudly instead
    # of writing to whatever listens on redis-py's default localhost:6379.
    data.update(host="127.0.0.1", port=0)
    client = manager.master_for(found.master_name, redis_class=redis.Redis,
                                connection_pool_class=SentinelConnectionPool,
                                connection_class=connection_class, **data)
    failover = Failover(found.master_name, client.connection_pool, watchers=len(found.hosts))
    manager.discover_master = _MasterLookup(manager, failover)  # type: ignore[method-assign]
    for host, port in found.hosts:
        SwitchWatcher(host, port, watch, failover).start()
    return client


def failing_over(state: Any) -> bool:
    """Whether a `SENTINEL MASTER` reply says that sentinel is failing the master over
    (the flag is set at `+try-failover` and goes with the switch, when the promoted
    replica's record replaces the old master's)."""
    flags = state.get("flags", "") if isinstance(state, dict) else ""
    return FAILING_OVER_FLAG in (flags if isinstance(flags, str) else ",".join(flags))


def first_look(sentinel: Any, failover: Failover) -> None:
    """A watcher's first questions to its sentinel once subscribed: where the master is
    (a switch may have happened while it was not following), and whether this sentinel
    is failing it over now. A process that started after `+try-failover` missed that
    event, and the old master still says master to ROLE until it is demoted, taking
    writes its resync erases (a chaos run's children booted mid-failover and ran jobs
    taken there a second time); so the writes pause here as if the event had come."""
    found: Any = sentinel.sentinel_get_master_addr_by_name(failover.master_name)
    if found:
        failover.moved((str(found[0]), int(found[1])), promoted=False)
    try:
        state = sentinel.sentinel_master(failover.master_name)
    except redis.exceptions.ResponseError:  # not allowed to ask (a sentinel ACL): no news
        return
    if failing_over(state):
        failover.started()


class _MasterLookup:
    """Where the master is, by `SENTINEL GET-MASTER-ADDR-BY-NAME`; nowhere during a failover.

    redis-py asks `SENTINEL MASTERS`, whose address moves only at
    `+switch-master`, seconds after the promotion; this one names the promoted
    replica as soon as it is master. While a failover is under way (from
    `+try-failover` to the promotion or the abort, see Failover) there is no
    master to give: the old one still takes writes that its resync will
    erase, so the caller gets MasterNotFoundError, a ConnectionError, which
    every caller waits out. The sentinel that answered is asked first next time.
    For seconds after a switch, a sentinel that has not learnt of it yet is not
    believed (Failover.agrees): the switch's event names the newer master.
    """

    def __init__(self, manager: Sentinel, failover: Failover) -> None:
        self.manager = manager
        self.failover = failover

    def __call__(self, service_name: str) -> tuple[str, int]:
        self.failover.looked.wait(FIRST_LOOK_WAIT)  # at once after the first connection
        self.failover.check_not_under_way(service_name)
        sentinels = self.manager.sentinels
        for index, sentinel in enumerate(sentinels):
            try:
                found: Any = sentinel.sentinel_get_master_addr_by_name(service_name)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                continue
            if found and self.failover.agrees((str(found[0]), int(found[1]))):
                sentinels[0], sentinels[index] = sentinel, sentinels[0]
                return str(found[0]), int(found[1])
        return self.failover.event_master(service_name)


# Events of a sentinel about one master (channel: what follows it).
_STARTED = "+try-failover"  # "master <name> <ip> <port>": writes stop here
_ENDED = ("-failover-abort-not-elected", "-failover-abort-no-good-slave",
          "-failover-abort-slave-timeout", "+failover-end", "+failover-end-for-timeout")
CHANNELS = (_STARTED, PROMOTED_CHANNEL, SWITCH_CHANNEL, *_ENDED)
PAUSE_MAX = 15.0  # seconds: the longest writes wait for a promotion before trying again
FIRST_LOOK_WAIT = 1.5  # seconds a client's first connection waits for its watchers' first look
FAILING_OVER_FLAG = "failover_in_progress"  # SENTINEL MASTER, from +try-failover to the switch
# Seconds a switch's event is trusted over a sentinel naming another master: sentinels
# agree within a couple of their 2 s hello periods.
EVENT_TRUST = 10.0


class Failover:
    """What the watchers know of one master: its address, and whether a failover is on.

    From `+try-failover` (any sentinel) to the promotion (`+promoted-slave` or
    `+switch-master`) or an abort, no connection is made: the old master
    would take writes its resync erases. The pause is bounded (PAUSE_MAX),
    so a lost event cannot stop the writes for good.
    """

    def __init__(self, master_name: str, pool: Any, *, sync_pool: bool = True,
                 watchers: int = 0) -> None:
        self.master_name = master_name
        # Set once every watcher had its first look at its sentinel (first_look), or
        # tried to: until then a failover under way may be unknown here.
        self.looked = threading.Event()
        self._to_look = watchers
        if watchers == 0:
            self.looked.set()
        self.pool = weakref.ref(pool)  # the watchers end once the client is gone
        # An asyncio pool (broker/async_sentinel.py) cannot be disconnected from a
        # watcher thread: its connections compare `generation` before each command.
        self.sync_pool = sync_pool
        self.generation = 0  # bumped at every drop of the connections
        self.lock = threading.Lock()
        self.known: tuple[str, int] | None = None
        self.paused_until = 0.0
        self.moved_at = float("-inf")  # when an event last named the master (monotonic)

    def under_way(self) -> bool:
        return self.paused_until > time.monotonic()

    def watcher_looked(self) -> None:
        """One watcher had its first look at its sentinel (or found it away)."""
        with self.lock:
            self._to_look -= 1
            if self._to_look <= 0:
                self.looked.set()

    def check_not_under_way(self, service_name: str) -> None:
        """MasterNotFoundError (a ConnectionError every caller waits out) during a failover."""
        if self.under_way():
            raise MasterNotFoundError(f"a failover of {service_name!r} is under way: waiting "
                                      "for the sentinels to promote a replica")

    def _recent_event(self) -> tuple[str, int] | None:
        """The master an event named within EVENT_TRUST seconds, else None."""
        if self.known is not None and time.monotonic() - self.moved_at < EVENT_TRUST:
            return self.known
        return None

    def agrees(self, answer: tuple[str, int]) -> bool:
        """Whether a sentinel's answer may be used: after a switch the sentinels learn of
        it from the leader's hello messages, seconds later, and one that has not yet
        names the old master, which still says master to ROLE until the sentinels
        convert it (and takes writes its resync erases: a chaos run on Sentinel re-ran
        jobs whose settles went there). The event is newer than such an answer."""
        recent = self._recent_event()
        return recent is None or recent == answer

    def event_master(self, service_name: str) -> tuple[str, int]:
        """No sentinel answered, or none agreed yet with a recent switch: the switch's."""
        recent = self._recent_event()
        if recent is None:
            raise MasterNotFoundError(f"no sentinel names a master {service_name!r}")
        return recent

    def event(self, channel: str, data: str) -> None:
        parts = data.split()
        if channel == SWITCH_CHANNEL:
            # "<name> <old ip> <old port> <new ip> <new port>"
            if len(parts) == 5 and parts[0] == self.master_name:
                self.moved((parts[3], int(parts[4])))
        elif channel == PROMOTED_CHANNEL:
            # "slave <ip:port> <ip> <port> @ <name> <old ip> <old port>"
            if len(parts) == 8 and parts[5] == self.master_name:
                self.moved((parts[2], int(parts[3])))
        elif len(parts) >= 2 and parts[0] == "master" and parts[1] == self.master_name:
            if channel == _STARTED:
                self.started()
            elif channel in _ENDED:
                self.paused_until = 0.0

    def started(self) -> None:
        with self.lock:
            if self.under_way():
                return
            self.paused_until = time.monotonic() + PAUSE_MAX
        log.warning("Redis Sentinel: failover of master %r started; writes wait for the "
                    "promoted replica", self.master_name)
        self._drop_connections()

    def moved(self, address: tuple[str, int], *, promoted: bool = True) -> None:
        """The master is at `address`: from an event (`promoted`), or as a sentinel says now."""
        with self.lock:
            if not promoted:
                # A sentinel's answer on (re)subscribing only fills in what is not
                # known: a sentinel that has not yet learnt of a switch would name
                # the old master, and only events move the address.
                if self.known is None:
                    self.known = address
                return
            self.paused_until = 0.0
            self.moved_at = time.monotonic()
            if address == self.known:
                return
            first, self.known = self.known is None, address
        if not first:
            log.warning("Redis Sentinel: master %r is now %s:%d; reconnecting there",
                        self.master_name, *address)
            self._drop_connections()

    def _drop_connections(self) -> None:
        # Every connection made before goes: the hot path's per-thread ones
        # before their next command, the pool's idle ones now.
        self.generation += 1
        direct.invalidate()
        pool = self.pool()
        if pool is not None and self.sync_pool:
            pool.disconnect(inuse_connections=False)


class SwitchWatcher(threading.Thread):
    """Follows one sentinel's events about the master, for as long as the client lives.

    One per sentinel: the events of a failover (`+try-failover`, the
    promotion) are published by the sentinel leading it, whichever it is.
    """

    def __init__(self, host: str, port: int, options: dict[str, Any],
                 failover: Failover) -> None:
        super().__init__(name=f"sentinel-watch-{host}:{port}", daemon=True)
        self.host, self.port = host, port
        self.options = options
        self.failover = failover
        self._looked = False

    def _first_look_done(self) -> None:
        """Looked at the sentinel, or found it away: connections need not wait for it."""
        if not self._looked:
            self._looked = True
            self.failover.watcher_looked()

    def run(self) -> None:
        while self.failover.pool() is not None:
            try:
                self._follow()
            except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                # That sentinel is away: try again soon; meanwhile the others
                # are followed and connections still check ROLE.
                log.debug("sentinel watch %s:%d: %r", self.host, self.port, exc)
                self._first_look_done()
                time.sleep(0.5)

    def _follow(self) -> None:
        sentinel = redis.Redis(host=self.host, port=self.port, **self.options)
        pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*CHANNELS)
            # Subscribed: from here on no event of this sentinel is missed. What
            # happened before (a switch, a failover begun) is asked now.
            first_look(sentinel, self.failover)
            self._first_look_done()
            while self.failover.pool() is not None:
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self.failover.event(str(message.get("channel", "")),
                                        str(message.get("data", "")))
        finally:
            pubsub.close()
            sentinel.close()
