"""The queue operations on Redis Streams: enqueue, fetch, settle, hand back, claim.

Every write that must be atomic is one Lua script (see scripts/*.lua).
`Broker` is also what a worker asks about other nodes between batches (their
liveness, its settled-job counts): the worker's one seam towards Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
from redis.exceptions import NoScriptError

from supervisor.broker import control, keys, nodes, replicas, scripts
from supervisor.broker.cluster import commands_for
from supervisor.broker.direct import DirectCommands, DirectScript, raise_error_reply
from supervisor.broker.replicas import NotReplicated  # noqa: F401 - callers import it here
from supervisor.core.outcome import Outcome

# Per-job value objects on the hot path are NamedTuples: immutable like
# frozen dataclasses, but several times cheaper to create (a frozen
# dataclass sets each field through object.__setattr__).


class Delivery(NamedTuple):
    """One stream entry handed to this consumer."""

    queue: str
    entry_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry taken over from a dead consumer."""

    delivery: Delivery
    idle_ms: int
    deliveries: int


class EnqueueRequest(NamedTuple):
    queue: str
    job_id: str
    message: str
    record: str  # the job record (JSON) stored under sv:{q}:job:<id>
    due_ms: int = 0
    ttl: int = 86400
    force: bool = False


# What enqueue_many takes per job: an EnqueueRequest or a plain tuple of the
# same seven fields (a batch's producer makes plain ones: a NamedTuple costs
# a Python-level __new__ call, ~10x a tuple).
EnqueueFields = tuple[str, str, str, str, int, int, bool]


class Tick(NamedTuple):
    """One tick of a periodic schedule, for fire_tick (see enqueue.lua, mode 'tick')."""

    schedule: str  # the schedule's name
    tick: int  # epoch seconds of the tick instant
    marker_ttl: int  # seconds the tick's marker lives
    last_fire: str  # JSON of the schedule's last fire, stored if this call fires


class Settlement(NamedTuple):
    """One finished entry and its outcome, for a batched settle()."""

    delivery: Delivery
    job_id: str
    outcome: Outcome


def _settle_args(item: Settlement) -> tuple[Any, ...]:
    """The seven settle.lua values of one entry (see its header)."""
    result = item.outcome
    if result.keep_record:
        kind, extra = "k", ""
    elif not result.record:
        kind, extra = "x", ""
    elif result.dead_letter:
        kind, extra = "d", result.dead_letter
    elif result.retry_message:
        kind, extra = "n", result.retry_message
    else:
        kind, extra = "r", ""
    return (item.delivery.entry_id, item.job_id, result.ttl, kind, result.retry_due_ms,
            result.record, extra)


def wire_text(text: str) -> str | bytes:
    """`text` as it can be sent back: the bytes it was read from when they were not UTF-8.

    Replies are decoded with `surrogateescape` (connection.py), so an entry
    whose bytes are not UTF-8 is read, not a crash; sending it back as is
    would fail to encode, so it goes back as its original bytes.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def _entry_key(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _fields_of(entry_fields: Any) -> dict[str, str]:
    if isinstance(entry_fields, dict):
        return entry_fields
    return dict(zip(entry_fields[::2], entry_fields[1::2], strict=False))


# What hand_back takes per job: (delivery, message, job id[, record]).
Requeue = tuple[Delivery, str, str] | tuple[Delivery, str, str, str]


def queue_keys(queue: str) -> tuple[str, str, str]:
    """The stream, delayed set and job record prefix of a queue."""
    return keys.stream(queue), keys.delayed(queue), keys.job_prefix(queue)


def enqueue_call(queue_names: tuple[str, str, str], requests: Iterable[EnqueueFields],
                 now_ms: int) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of enqueue.lua (mode 'jobs') adding `requests`, all of the queue
    of `queue_names` (queue_keys()): the one builder of the sync and the async producer.
    Every job record is declared in KEYS (Redis Cluster routes the script by them and
    follows a migration)."""
    stream, delayed, prefix = queue_names
    names: list[str] = [stream, delayed]
    args: list[Any] = ["jobs", now_ms]
    for _, job_id, message, record, due_ms, ttl, force in requests:
        names.append(prefix + job_id)
        args += (f"{job_id} {due_ms} {ttl} {'1' if force else '0'}", message, record)
    return names, args


def enqueue_chunks(requests: Iterable[EnqueueFields], chunk: int = 500,
                   ) -> Iterator[tuple[str, list[EnqueueFields], list[int]]]:
    """(queue, requests, their positions) in chunks of at most `chunk` per queue, in the
    order they fill up (what enqueue_many sends, one script call each)."""
    pending: dict[str, tuple[list[EnqueueFields], list[int]]] = {}
    for index, request in enumerate(requests):
        batch = pending.setdefault(request[0], ([], []))
        batch[0].append(request)
        batch[1].append(index)
        if len(batch[0]) >= chunk:
            del pending[request[0]]
            yield request[0], batch[0], batch[1]
    for queue, (rest, positions) in pending.items():
        yield queue, rest, positions


class StreamLost(Exception):
    """The stream or consumer group of a queue vanished under entries being settled.

    Redis lost its data (a restart without persistence, or FLUSHALL): the
    entries, and so the jobs, are gone; there is nothing left to acknowledge.
    """

    def __init__(self, lost: dict[str, int], settled: int) -> None:
        super().__init__(", ".join(f"{count} of queue {queue}" for queue, count in lost.items()))
        self.lost = lost  # queue -> entries that were being settled
        self.settled = settled  # those of other queues that were settled


class Broker:
    """Redis Streams operations for any number of queues, over one client."""

    def __init__(self, client: redis.Redis, *, dead_letter_max: int = 100_000,
                 wait_replicas: int = 0, wait_timeout: float = 1.0) -> None:
        # Typed loosely: redis-py's stubs do not model decode_responses=True.
        self.client: Any = client
        self.dead_letter_max = dead_letter_max
        # WAIT after each enqueue and settle, in the same round trip and on the
        # same connection as the write (WAIT counts that connection's writes).
        self.wait: tuple[str, int, int] | None = (
            ("WAIT", wait_replicas, max(1, int(wait_timeout * 1000))) if wait_replicas else None)
        self._promote = scripts.load(client, "promote")
        # The per-batch commands (fetch, mark taken, settle) skip redis-py's
        # per-call machinery: see direct.py.
        self.direct: Any = commands_for(client)  # DirectCommands; routed per slot on a cluster
        self.sharded = not isinstance(self.direct, DirectCommands)
        self._settle = DirectScript(self.direct, scripts.load(client, "settle"))
        self._enqueue = DirectScript(self.direct, scripts.load(client, "enqueue"))
        self._take = DirectScript(self.direct, scripts.load(client, "take"))
        self._handback = scripts.load(client, "handback")
        self._claim_dead = scripts.load(client, "claim_dead")
        self._known_queues: set[str] = set()
        # Queues of the last fetch whose cancel set was not empty (see fetch).
        self.cancels_seen: set[str] = set()
        self._queue_keys: dict[str, tuple[str, str, str]] = {}
        self._recent: dict[str, tuple[str, ...]] = {}

    @classmethod
    def for_config(cls, client: redis.Redis, config: Any) -> Broker:
        """A Broker with the configuration's namespace, dead-letter cap and replica wait."""
        keys.use_namespace(config.namespace)
        return cls(client, dead_letter_max=config.dead_letter_max,
                   wait_replicas=config.wait_replicas, wait_timeout=config.wait_timeout)

    def _write(self, script: DirectScript, command: Sequence[Any]) -> Any:
        """Run a script's EVALSHA; with --wait-replicas, WAIT for the replicas after it."""
        if self.wait is None:
            return script.run(command)
        return replicas.run_and_wait(self.direct, script, command, self.wait)

    # --- producing -------------------------------------------------------

    def remember_queues(self, queues: Iterable[str]) -> None:
        """Add new queue names to the registry of queues (once per name and Broker)."""
        new = set(queues) - self._known_queues
        if new:
            self.direct.call("SADD", keys.QUEUES, *sorted(new))
            self._known_queues |= new

    def _keys_of(self, queue: str) -> tuple[str, str, str]:
        """The stream, delayed set and job record prefix of a queue (cached)."""
        names = self._queue_keys.get(queue)
        if names is None:
            names = self._queue_keys[queue] = queue_keys(queue)
        return names

    def _enqueue_command(self, queue: str, requests: Iterable[EnqueueFields],
                         now_ms: int) -> tuple[Any, ...]:
        """The EVALSHA of enqueue.lua adding `requests` (all of `queue`)."""
        return self._enqueue.args(*enqueue_call(self._keys_of(queue), requests, now_ms))

    def enqueue(self, request: EnqueueRequest, now_ms: int) -> bool:
        """Add one job; False when its id is already known (duplicate ignored)."""
        if request.queue not in self._known_queues:
            self.remember_queues((request.queue,))
        return bool(self._write(self._enqueue,
                                self._enqueue_command(request.queue, (request,), now_ms))[0])

    def fire_tick(self, tick: Tick, request: EnqueueRequest, now_ms: int) -> int:
        """Enqueue the job of a schedule's tick unless some worker did already.

        Returns 1 fired (this call enqueued), 0 fired before (or older than the
        last fire), 2 the tick is taken but its job id was already known.
        """
        stream, delayed, prefix = self._keys_of(request.queue)
        command = self._enqueue.args(
            (stream, delayed, keys.schedules(request.queue),
             keys.schedule_tick(request.queue, tick.schedule, tick.tick), prefix + request.job_id),
            ["tick", now_ms, tick.schedule, tick.tick, tick.marker_ttl, tick.last_fire,
             f"{request.job_id} 0 {request.ttl} 0", request.message, request.record])
        flags = self._write(self._enqueue, command)
        return 0 if not flags else (1 if flags[0] == 1 else 2)

    def enqueue_many(self, requests: Iterable[EnqueueFields], now_ms: int,
                     chunk: int = 500) -> list[bool]:
        """Add many jobs (True added, False duplicate), in order: one script call per chunk.

        Each chunk's call is sent as soon as the chunk is complete, before
        the replies are read, so Redis runs one chunk while the next is built
        (`requests` may be a generator, consumed once): one round trip in all.
        """
        calls: list[tuple[Any, ...]] = []  # every command sent: SADD or EVALSHA
        placed: list[list[int] | None] = []  # per command, its requests' positions
        new_queues: list[str] = []
        pending: dict[str, tuple[list[EnqueueFields], list[int]]] = {}

        def commands() -> Iterator[tuple[Any, ...]]:
            for index, request in enumerate(requests):
                queue = request[0]
                batch = pending.get(queue)
                if batch is None:
                    batch = pending[queue] = ([], [])
                    if queue not in self._known_queues and queue not in new_queues:
                        new_queues.append(queue)  # registered before its first job
                        calls.append(("SADD", keys.QUEUES, queue))
                        placed.append(None)
                        yield calls[-1]
                batch[0].append(request)
                batch[1].append(index)
                if len(batch[0]) >= chunk:
                    del pending[queue]
                    calls.append(self._enqueue_command(queue, batch[0], now_ms))
                    placed.append(batch[1])
                    yield calls[-1]
            for queue, (rest, positions) in pending.items():
                calls.append(self._enqueue_command(queue, rest, now_ms))
                placed.append(positions)
                yield calls[-1]
            if self.wait is not None:  # after every chunk, on the same connection
                calls.append(self.wait)
                placed.append(None)
                yield calls[-1]

        replies = self.direct.call_stream(commands())
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # A restarted or flushed server forgot the script: the calls that
            # failed wrote nothing, so load it and send just those again.
            self._enqueue.load()
            again = self.direct.call_many([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        if self.wait is not None:
            if missing:  # the chunks sent again came after the first WAIT
                replies[-1] = self.direct.call(*self.wait)
            replicas.check(replies[-1], self.wait)
        raise_error_reply(replies)
        self._known_queues.update(new_queues)
        added = [False] * sum(len(positions) for positions in placed if positions)
        for positions, flags in zip(placed, replies, strict=True):
            if positions is not None:
                for index, flag in zip(positions, flags, strict=True):
                    added[index] = flag == 1
        return added

    # --- consuming -------------------------------------------------------

    def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create each queue's stream and consumer group if missing.

        The group starts at id 0, so jobs added before any worker existed are
        delivered too.
        """
        for queue in queues:
            try:
                self.client.xgroup_create(keys.stream(queue), keys.GROUP, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def fetch(self, consumer: str, queues: Sequence[str], count: int, block_ms: int | None,
              *, own_pending: bool = False) -> list[Delivery]:
        """Read up to `count` new entries (or, with own_pending, this consumer's unacked ones)."""
        if self.sharded and len(queues) > 1:
            return self._fetch_sharded(consumer, queues, count, block_ms, own_pending)
        names = [keys.stream(queue) for queue in queues]
        # XREADGROUP's COUNT is per stream: share `count` out among the queues
        # so a batch holds about what the caller sized it for. Own pending
        # entries are read with the whole count per stream, so that a batch
        # shorter than `count` means none are left in any stream.
        per_stream = count if own_pending else -(-count // len(names))
        command: list[Any] = ["XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", per_stream]
        if not own_pending and block_ms is not None:
            command += ("BLOCK", block_ms)
        command += ("STREAMS", *names, *(["0" if own_pending else ">"] * len(names)))
        try:
            # In the same round trip, after the read: which of the queues have cancel
            # requests pending (their jobs are then all checked by mark_taken).
            replies = self.direct.call_many([command, *(("HLEN", keys.cancels(queue))
                                                        for queue in queues)])
            reply = replies[0]
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
            self.cancels_seen = {queue for queue, count in zip(queues, replies[1:], strict=True)
                                 if isinstance(count, int) and count > 0}
        except redis.exceptions.ResponseError as exc:
            # NOGROUP: no stream/group yet; UNBLOCKED: the stream was deleted
            # while we waited (FLUSHALL, a restart without persistence).
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            # The stream vanished (flushed, or Redis restarted without data):
            # recreate it and read again on the next call.
            self.ensure_groups(queues)
            return []
        return self._deliveries(reply, dict(zip(names, queues, strict=True)))

    def _fetch_sharded(self, consumer: str, queues: Sequence[str], count: int,
                       block_ms: int | None, own_pending: bool) -> list[Delivery]:
        """fetch() on a cluster: one XREADGROUP per queue (each its own slot), never cross-slot.

        ClusterCommands.read_each reads them all without blocking, pipelined
        per node, and if none has an entry blocks on all of them together, so
        a job on any queue is picked up at once.
        """
        per_stream = count if own_pending else -(-count // len(queues))
        start = "0" if own_pending else ">"
        reads = [("XREADGROUP", "GROUP", keys.GROUP, consumer, "COUNT", per_stream,
                  "STREAMS", keys.stream(queue), start) for queue in queues]
        by_stream = {keys.stream(queue): queue for queue in queues}
        # Whether a queue has cancels is not read here (it would cost a round trip per
        # node): every job fetched on a cluster is checked by mark_taken instead.
        self.cancels_seen = set(queues)
        replies = self.direct.read_each(reads, None if own_pending else block_ms)
        return self._sharded_replies(replies, queues, by_stream)

    def _sharded_replies(self, replies: list[Any], queues: Sequence[str],
                         by_stream: dict[str, str]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        missing = []
        for queue, reply in zip(queues, replies, strict=True):
            if isinstance(reply, redis.exceptions.ResponseError):
                if "NOGROUP" not in str(reply) and "UNBLOCKED" not in str(reply):
                    raise reply
                missing.append(queue)
                continue
            deliveries += self._deliveries(reply, by_stream)
        if missing:
            self.ensure_groups(missing)
        return deliveries

    def _deliveries(self, reply: Any, by_stream: dict[str, str]) -> list[Delivery]:
        """The entries of an XREADGROUP reply, as (queue, entry id, message)."""
        deliveries: list[Delivery] = []
        gone: dict[str, list[str]] = {}
        # Reply: {stream: [[entry id, [field, value, ...] or nil], ...]} (RESP3, the
        # default of redis-py 8) or [[stream, entries], ...] (RESP2), or nil.
        items = reply.items() if isinstance(reply, dict) else (reply or ())
        for stream_name, entries in items:
            queue = by_stream[stream_name]
            for entry_id, entry_fields in entries:
                if entry_fields is None:  # deleted while pending: nothing to run
                    gone.setdefault(stream_name, []).append(entry_id)
                    continue
                if entry_fields[0] == keys.MESSAGE_FIELD and len(entry_fields) == 2:
                    message = entry_fields[1]
                else:
                    message = _fields_of(entry_fields).get(keys.MESSAGE_FIELD, "")
                deliveries.append(Delivery(queue, entry_id, message))
        for stream_name, ids in gone.items():  # or they would be read again forever
            self.direct.call("XACK", stream_name, keys.GROUP, *ids)
        return deliveries

    def mark_taken(self, taken: dict[str, dict[str, str]]) -> dict[tuple[str, str], str]:
        """Record which jobs a worker holds: {queue: {job id: "worker started-at"}}; returns
        those among them with a cancel request: (queue, job id) -> the cancel JSON (see
        take.lua; explicit job ids repeat across queues).

        One command per queue per fetched batch; readers report such jobs as
        started (a worker holds no more than ~100 ms of work it has not begun).
        """
        commands = [self._take.args((keys.running(queue), keys.cancels(queue)),
                                    [part for pair in fields.items() for part in pair])
                    for queue, fields in taken.items()]
        replies = self.direct.call_many(commands)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            self._take.load()  # a restarted or flushed server: taking again is harmless
            replies = self.direct.call_many(commands)
        raise_error_reply(replies)
        cancelled: dict[tuple[str, str], str] = {}
        for queue, reply in zip(taken, replies, strict=True):
            pairs = list(reply or ())
            cancelled.update(((queue, str(job_id)), str(info))
                             for job_id, info in zip(pairs[::2], pairs[1::2], strict=True))
        return cancelled

    def settle(self, consumer: str, settlements: Sequence[Settlement], now_ms: int) -> int:
        """Write outcomes and acknowledge, atomically per queue; returns how many were ours."""
        by_queue: dict[str, list[Settlement]] = {}
        for item in settlements:
            by_queue.setdefault(item.delivery.queue, []).append(item)
        settled = 0
        lost: dict[str, int] = {}
        for queue, items in by_queue.items():
            ids = sorted((item.delivery.entry_id for item in items), key=_entry_key)
            prefix = keys.job_prefix(queue)
            script_keys = [keys.stream(queue), keys.dead(queue), keys.delayed(queue),
                           keys.running(queue), *self._recent_keys(queue),
                           keys.cancels(queue)]
            args: list[Any] = [keys.GROUP, consumer, self.dead_letter_max, now_ms, ids[0], ids[-1]]
            for item in items:
                script_keys.append(prefix + item.job_id)
                args += _settle_args(item)
            try:
                settled += int(self._write(self._settle, self._settle.args(script_keys, args)))
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                lost[queue] = len(items)  # the other queues are still settled
        if lost:
            raise StreamLost(lost, settled)
        return settled

    def _recent_keys(self, queue: str) -> tuple[str, ...]:
        """The queue's browse-index keys for settle.lua (cached; see broker/recent.py)."""
        names = self._recent.get(queue)
        if names is None:
            names = self._recent[queue] = tuple(keys.recent(queue, state)
                                                for state in keys.RECENT_STATES)
        return names

    def hand_back(self, consumer: str, items: Sequence[Requeue]) -> int:
        """Put held entries back at the tail of their queues.

        `items` are (delivery, message to re-add, job id) or, to also replace
        the job's record (how an interrupted or orphaned attempt ended),
        (delivery, message, job id, record).
        """
        returned = 0
        by_queue: dict[str, tuple[list[str], list[str | bytes]]] = {}
        for delivery, message, job_id, *written in items:
            queue = delivery.queue
            names, quadruples = by_queue.setdefault(
                queue, ([keys.stream(queue), keys.running(queue)], []))
            names.append(keys.job(queue, job_id))
            quadruples.extend([delivery.entry_id, wire_text(message), job_id,
                               written[0] if written else ""])
        for names, quadruples in by_queue.values():
            returned += int(self._handback(keys=names, args=[keys.GROUP, consumer, *quadruples]))
        return returned

    def consumers(self, queue: str) -> list[dict[str, Any]]:
        """XINFO CONSUMERS of the queue's group ([] when the group does not exist yet)."""
        try:
            return list(self.client.xinfo_consumers(keys.stream(queue), keys.GROUP))
        except redis.exceptions.ResponseError:
            return []

    def claim_dead(self, queue: str, dead_consumer: str, claimer: str,
                   batch: int = 500) -> list[Claimed]:
        """Take over every entry `dead_consumer` held (see claim_dead.lua)."""
        reply = self._claim_dead(keys=[keys.stream(queue)],
                                 args=[keys.GROUP, dead_consumer, claimer, batch])
        return [
            Claimed(Delivery(queue, str(entry_id), str(message)), int(idle), int(count))
            for entry_id, message, idle, count in reply
        ]

    def own_pending(self, consumer: str, queues: Sequence[str], skip: set[tuple[str, str]],
                    count: int) -> list[Delivery]:
        """This consumer's pending entries that are not in `skip` ((queue, entry id) of the
        jobs it runs), read without delivering them again: XPENDING and XRANGE leave the
        entries' idle time alone, which is how a job past its time limit is told when its
        worker is killed (XREADGROUP ... 0 would restart it)."""
        found: list[Delivery] = []
        self.cancels_seen = set(queues)  # rare path: check every job taken
        for queue in queues:
            stream = keys.stream(queue)
            try:
                pending = self.client.xpending_range(stream, keys.GROUP, "-", "+",
                                                     count + len(skip), consumername=consumer)
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                continue
            for item in pending:
                entry_id = str(item["message_id"])
                if (queue, entry_id) in skip:
                    continue
                entries = self.client.xrange(stream, entry_id, entry_id)
                if not entries:  # deleted while pending: nothing to run, only to drop
                    self.client.xack(stream, keys.GROUP, entry_id)
                    continue
                message = _fields_of(entries[0][1]).get(keys.MESSAGE_FIELD, "")
                found.append(Delivery(queue, entry_id, message))
                if len(found) >= count:
                    return found
        return found

    def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of `queues` are paused (see broker/control.py)."""
        return set(control.paused(self.client, queues))

    def live_nodes(self, names: set[str]) -> set[str]:
        """Which of these nodes still have a heartbeat (their consumers are alive)."""
        return nodes.live_nodes(self.client, names)

    def add_done(self, counts: dict[str, int], second: int) -> None:
        """Count settled jobs per queue for `status` jobs/s (see broker/nodes.py)."""
        nodes.add_done(self.client, counts, second)

    def promote(self, queues: Iterable[str], now_ms: int, batch: int = 1000) -> int:
        """Move due delayed jobs of `queues` into their streams."""
        moved = 0
        for queue in queues:
            moved += int(self._promote(keys=[keys.delayed(queue), keys.stream(queue)],
                                       args=[now_ms, batch]))
        return moved
