"""Real Redis deployments for the high-availability tests: Sentinel and Cluster.

Every process is started by the test on free ports under its own folder and
stopped after; nothing here touches a server it did not start.

- `SentinelSet`: a master, N replicas and M sentinels (`redis-server
  --sentinel`), quick failure detection (`down-after-milliseconds` 1000);
  `failover()` asks a sentinel for a failover and waits until every
  sentinel names the new master and it answers ROLE master.
- `ClusterSet`: 3 masters with one replica each by default (`redis-cli
  --cluster create`; more server options for a test that wants them),
  `migrate_slot()` moves one slot with its keys the way a resharding does
  (IMPORTING / MIGRATING / MIGRATE / SETSLOT NODE), and `kill_master()` SIGKILLs
  a master and waits for its replica to take over.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import redis
from redis_server import RedisServer, free_port, server_binary


def cluster_port(taken: Collection[int] = ()) -> int:
    """A free port whose cluster bus port (+10000) is free too, both below the ephemeral range,
    and not one of `taken` (the ports drawn for the other nodes of a cluster not started yet:
    free to bind now, but one node would fail to listen on the other's port)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(20000, 22999)
        if port in taken:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except redis.exceptions.RedisError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def _client(port: int, **options: Any) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=2,
                       socket_connect_timeout=1, **options)


class SentinelProcess:
    """One sentinel: a config file of its own (sentinels rewrite it) and a process."""

    def __init__(self, folder: Path, master_name: str, master_port: int, quorum: int,
                 port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.master_name = master_name
        self.master_port = master_port
        self.quorum = quorum
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "sentinel.conf"
        if not config.exists():
            name = self.master_name
            config.write_text("\n".join([
                f"port {self.port}", "bind 127.0.0.1", f"dir {self.folder}",
                f"logfile {self.folder / 'sentinel.log'}",
                f"sentinel monitor {name} 127.0.0.1 {self.master_port} {self.quorum}",
                f"sentinel down-after-milliseconds {name} 1000",
                f"sentinel failover-timeout {name} 5000",
                f"sentinel parallel-syncs {name} 1", ""]))
        self.process = subprocess.Popen([server_binary(), str(config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _client(self.port).ping(), 10, f"sentinel on {self.port}")

    def master(self) -> tuple[str, int] | None:
        found = _client(self.port).sentinel_get_master_addr_by_name(self.master_name)
        return (str(found[0]), int(found[1])) if found else None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


ABORTED = "aborted"  # SentinelSet.failover: the sentinels gave the failover up


class SentinelSet:
    """A master, `replicas` replicas and `sentinels` sentinels watching it."""

    def __init__(self, workdir: Path, *, master_name: str = "svmaster", replicas: int = 2,
                 sentinels: int = 3, password: str | None = None) -> None:
        self.master_name = master_name
        self.password = password
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        first = free_port()
        self.servers = [RedisServer(workdir / "redis-0", first, *auth)]
        self.servers += [RedisServer(workdir / f"redis-{i}", None, *auth, "--replicaof",
                                     "127.0.0.1", str(first)) for i in range(1, replicas + 1)]
        self.sentinels = [SentinelProcess(workdir / f"sentinel-{i}", master_name, first,
                                          quorum=sentinels // 2 + 1)
                          for i in range(sentinels)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        creds = f":{self.password}@" if self.password else ""
        return f"redis+sentinel://{creds}{hosts}/{self.master_name}/0"

    def start(self) -> None:
        for server in self.servers:
            server.start()
        if self.password:  # sentinels need the data servers' password
            for sentinel in self.sentinels:
                sentinel.folder.mkdir(parents=True, exist_ok=True)
        for sentinel in self.sentinels:
            sentinel.start()
            if self.password:
                _client(sentinel.port).sentinel_set(self.master_name, "auth-pass",
                                                    self.password)
        wait_for(lambda: self.replicas_in_sync(), 60, "replicas in sync")
        wait_for(lambda: all(s.master() for s in self.sentinels), 10, "sentinels agree")
        # Sentinels learn replicas and each other from the master's INFO and its
        # hello channel, within seconds: a failover before that finds no replica.
        wait_for(self.sentinels_know_all, 60, "sentinels know every replica and each other")

    def sentinels_know_all(self) -> bool:
        replicas, others = len(self.servers) - 1, len(self.sentinels) - 1
        for sentinel in self.sentinels:
            client = _client(sentinel.port)
            known = client.execute_command("SENTINEL", "REPLICAS", self.master_name)
            healthy = [r for r in known if "s_down" not in str(r) and "disconnected" not in str(r)]
            peers = client.execute_command("SENTINEL", "SENTINELS", self.master_name)
            if len(healthy) < replicas or len(peers) < others:
                return False
        return True

    def client(self, port: int) -> redis.Redis:
        return _client(port, password=self.password)

    def master_port(self) -> int:
        found = self.sentinels[0].master()
        assert found is not None
        return found[1]

    def server(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def replicas_in_sync(self) -> bool:
        info = self.client(self.master_port()).info("replication")
        live = sum(1 for s in self.servers if s.process is not None) - 1
        return int(info.get("connected_slaves", 0)) >= live

    def failover(self, timeout: float = 30.0, attempts: int = 3) -> int:
        """SENTINEL FAILOVER; returns the new master's port once it serves as master.

        The sentinels abort a failover whose chosen replica does not take its
        promotion within the failover timeout (5 s here): seen on CI with a replica
        restarted after a kill -9 and busy on a loaded machine
        (`-failover-abort-slave-timeout`, the master unchanged). Such a failover is
        asked for again, once the replicas are in sync, up to `attempts` times.
        """
        old = self.master_port()
        leader = self.leader()
        for attempt in range(attempts):
            if attempt:  # a replica the sentinels see healthy, in sync: else NOGOODSLAVE
                wait_for(lambda: self.replicas_in_sync() and self.sentinels_know_all(), 60,
                         "replicas in sync and healthy before failing over again")
            leader.execute_command("SENTINEL", "FAILOVER", self.master_name)
            outcome = wait_for(lambda: self._moved_from(old) or self._aborted(leader, old),
                               timeout, "a new master, or the failover aborted")
            if outcome != ABORTED:
                return int(outcome)
        raise RuntimeError(f"SENTINEL FAILOVER aborted {attempts} times: {old} stays master")

    def kill_master(self, timeout: float = 30.0) -> int:
        """SIGKILL the master; returns the port of the replica promoted in its place."""
        old = self.master_port()
        self.server(old).kill()
        return int(wait_for(lambda: self._moved_from(old), timeout, "a new master"))

    def _moved_from(self, old: int) -> int | None:
        """The new master's port once every sentinel names it and it says master."""
        ports = {s.master() for s in self.sentinels}
        if len(ports) != 1:
            return None
        (address,) = ports
        if address is None or address[1] == old:
            return None
        role = self.client(address[1]).execute_command("ROLE")
        return address[1] if role and role[0] == "master" else None

    def leader(self) -> redis.Redis:
        """The sentinel the tests send SENTINEL FAILOVER to (it then leads the failover)."""
        return _client(self.sentinels[0].port)

    def failing_over(self, leader: redis.Redis | None = None) -> bool:
        """Whether the leader runs a failover now (SENTINEL MASTER's flag, set by SENTINEL
        FAILOVER itself, gone at the switch or the abort)."""
        state: Any = (leader or self.leader()).sentinel_master(self.master_name)
        return "failover_in_progress" in str(state.get("flags"))

    def _aborted(self, leader: redis.Redis, old: int) -> str | None:
        """ABORTED once the sentinel that ran the failover gave it up: no failover in
        progress and `old` still master."""
        if self.failing_over(leader) or self.master_port() != old:
            return None
        return ABORTED

    @contextlib.contextmanager
    def replicas_stopped(self) -> Iterator[int]:
        """Every replica of the master SIGSTOPped meanwhile (SIGCONT on the way out): one
        chosen for a failover takes its promotion only once continued. Yields the
        master's port."""
        old = self.master_port()
        held = [server for server in self.servers if server.port != old]
        for server in held:
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)
        try:
            yield old
        finally:
            for server in held:
                if server.process is not None:
                    server.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()


class ClusterSet:
    """Three masters with one replica each, created with redis-cli --cluster create."""

    def __init__(self, workdir: Path, *, masters: int = 3, replicas: int = 1,
                 options: tuple[str, ...] = ()) -> None:
        self.masters = masters
        self.replicas = replicas
        # A replica may take over however long it was disconnected: a test kills
        # masters on purpose and wants the takeover, not the safety margin.
        options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                   "--cluster-config-file", "nodes.conf", "--cluster-replica-validity-factor",
                   "0", "--repl-diskless-sync-delay", "0", *options)
        ports: list[int] = []
        for _ in range(masters * (replicas + 1)):
            ports.append(cluster_port(ports))
        self.servers = [RedisServer(workdir / f"node-{i}", port, *options)
                        for i, port in enumerate(ports)]

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[:2])
        return f"redis+cluster://{seeds}"

    def start(self) -> None:
        for server in self.servers:
            server.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is needed to create a cluster")
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{s.port}" for s in self.servers),
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        wait_for(self.healthy, 30, "cluster state ok on every node")
        wait_for(self.replicas_online, 30, "every replica in sync with its master")

    def replicas_online(self) -> bool:
        for port in self.master_ports():
            info = self.client(port).info("replication")
            online = [value for key, value in info.items() if key.startswith("slave")
                      and isinstance(value, dict) and value.get("state") == "online"]
            if len(online) < self.replicas:
                return False
        return True

    def client(self, port: int) -> redis.Redis:
        return _client(port)

    def live(self) -> list[RedisServer]:
        return [server for server in self.servers if server.process is not None]

    def healthy(self) -> bool:
        return all(self.client(s.port).cluster("info").get("cluster_state") == "ok"
                   for s in self.live())

    def slot_owner(self, slot: int) -> int:
        """The port of the master serving `slot`."""
        for start, end, master, *_ in self.client(self.live()[0].port).cluster("slots"):
            if start <= slot <= end:
                return int(master[1])
        raise LookupError(f"slot {slot} is not served")

    def node_id(self, port: int) -> str:
        return str(self.client(port).cluster("myid"))

    def master_ports(self) -> list[int]:
        slots = self.client(self.live()[0].port).cluster("slots")
        return sorted({int(master[1]) for _, _, master, *_ in slots})

    def migrate_slot(self, slot: int, target: int, *, between: Callable[[], None] | None = None
                     ) -> None:
        """Move `slot` and its keys to the master on `target`, as a resharding does.

        `between` runs while the slot is half moved (MIGRATING / IMPORTING), so a
        test can act while clients are being answered ASK.
        """
        source = self.slot_owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        self.client(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self.client(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        if between is not None:
            between()
        while True:
            names = self.client(source).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not names:
                break
            self.client(source).execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000,
                                                "KEYS", *names)
        for server in self.live():
            with contextlib.suppress(redis.exceptions.ResponseError):
                self.client(server.port).execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                                         target_id)
        wait_for(lambda: self.slot_owner(slot) == target, 10, f"slot {slot} on {target}")

    def kill_master(self, port: int, timeout: float = 30.0) -> int:
        """SIGKILL the master on `port`; returns the port of the replica that took over."""
        slots = [(start, end) for start, end, master, *_ in
                 self.client(port).cluster("slots") if int(master[1]) == port]
        next(server for server in self.servers if server.port == port).kill()
        first = slots[0][0]
        new = int(wait_for(lambda: (owner := self.slot_owner(first)) != port and owner,
                           timeout, "a replica promoted"))
        wait_for(self.healthy, timeout, "cluster state ok again")
        return new

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
