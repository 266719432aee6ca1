"""The queue operations on Redis Streams: enqueue, fetch, settle, hand back, claim.

Every write that must be atomic is one Lua script (see scripts/*.lua).
`Broker` is also what a worker asks about other nodes between batches (their
liveness, its settled-job counts): the worker's one seam towards Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis
from redis.exceptions import NoScriptError

from supervisor.broker import control, keys, levels, nodes, replicas, scripts, workflow
from supervisor.broker.cluster import commands_for
from supervisor.broker.direct import DirectCommands, DirectScript, raise_error_reply
from supervisor.broker.enqueue import (
    EnqueueFields,
    EnqueueRequest,
    QueueKeys,
    Tick,
    enqueue_call,
    holder_of,
    queue_keys,
)
from supervisor.broker.fetching import Delivery, Fetcher, fields_of
from supervisor.broker.limits import Gated, LimitGate, Waited
from supervisor.broker.replicas import NotReplicated  # noqa: F401 - callers import it here
from supervisor.broker.shards_away import ShardsAway
from supervisor.core.outcome import Outcome
from supervisor.core.priority import level_of

# Per-job value objects on the hot path are NamedTuples: immutable like
# frozen dataclasses, but several times cheaper to create (a frozen
# dataclass sets each field through object.__setattr__).

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry taken over from a dead consumer."""

    delivery: Delivery
    idle_ms: int
    deliveries: int


class Settlement(NamedTuple):
    """One finished entry and its outcome, for a batched settle()."""

    delivery: Delivery
    job_id: str
    outcome: Outcome


def unique_of(message: str) -> str:
    """The digest of the unique lock a job message carries ('' for none): its "uq" is the
    message's last key (core/job.py), so one rfind finds it without decoding. A user's
    kwargs key "uq" can only make a wrong guess, which is harmless: settle.lua deletes
    a lock only if it holds this job's id."""
    at = message.rfind('"uq":"')
    if at < 0:
        return ""
    return message[at + 6:message.find('"', at + 6)]


def _settle_args(item: Settlement, entry_id: str) -> tuple[Any, ...]:
    """The first seven settle.lua values of one entry (see its header)."""
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
    return (entry_id, item.job_id, result.ttl, kind, result.retry_due_ms,
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


# What hand_back takes per job: (delivery, message, job id[, record]).
Requeue = tuple[Delivery, str, str] | tuple[Delivery, str, str, str]


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
        self.workflow = scripts.load(client, "workflow")
        self._workflow = DirectScript(self.direct, self.workflow)
        self._known_queues: set[str] = set()
        # Queues of the last fetch whose cancel set was not empty (see fetch).
        self.cancels_seen: set[str] = set()
        self._queue_keys: dict[tuple[str, int], QueueKeys] = {}
        # On a cluster: the queues whose shard does not answer, skipped for a moment by
        # the fetch and the chores so the other shards' queues go on (shards_away.py).
        self.away = ShardsAway() if self.sharded else None
        self._fetcher = Fetcher(self.direct, DirectScript(self.direct,
                                                          scripts.load(client, "fetch")),
                                self.away)
        self._recent: dict[str, tuple[str, ...]] = {}
        self._limits: dict[str, tuple[str, ...]] = {}
        self._gate: LimitGate | None = None  # made by the first batch with limited jobs

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

    def _keys_of(self, queue: str, level: int = 0) -> QueueKeys:
        """The stream of `level`, delayed set, job record prefix and levels set of a queue
        (queue_keys(), cached)."""
        names = self._queue_keys.get((queue, level))
        if names is None:
            names = self._queue_keys[queue, level] = queue_keys(queue, level)
        return names

    def _enqueue_command(self, queue: str, requests: Iterable[EnqueueFields],
                         now_ms: int, level: int = 0) -> tuple[Any, ...]:
        """The EVALSHA of enqueue.lua adding `requests` (all of `queue` and `level`)."""
        return self._enqueue.args(*enqueue_call(self._keys_of(queue, level), requests,
                                                now_ms))

    def enqueue(self, request: EnqueueRequest, now_ms: int) -> bool | str:
        """Add one job; False when its id is already known (duplicate ignored), or the id of
        the equal job holding its unique lock (nothing added)."""
        if request.queue not in self._known_queues:
            self.remember_queues((request.queue,))
        flag = self._write(self._enqueue, self._enqueue_command(
            request.queue, (request,), now_ms, level_of(request.message)))[0]
        return holder_of(flag) or bool(flag)

    def fire_tick(self, tick: Tick, request: EnqueueRequest, now_ms: int) -> int:
        """Enqueue the job of a schedule's tick unless some worker did already.

        Returns 1 fired (this call enqueued), 0 fired before (or older than the
        last fire), 2 the tick is taken but its job id was already known.
        """
        stream, delayed, prefix, levels_set = self._keys_of(request.queue,
                                                            level_of(request.message))
        command = self._enqueue.args(
            (stream, delayed, keys.schedules(request.queue),
             keys.schedule_tick(request.queue, tick.schedule, tick.tick), prefix + request.job_id,
             *([levels_set] if levels_set else [])),
            ["tick", now_ms, tick.schedule, tick.tick, tick.marker_ttl, tick.last_fire,
             f"{request.job_id} 0 {request.ttl} 0", request.message, request.record])
        flags = self._write(self._enqueue, command)
        return 0 if not flags else (1 if flags[0] == 1 else 2)

    def enqueue_many(self, requests: Iterable[EnqueueFields], now_ms: int,
                     chunk: int = 500) -> list[bool | str]:
        """Add many jobs (True added, False duplicate, or the id of the equal job holding a
        unique lock), in order: one script call per chunk.

        Each chunk's call is sent as soon as the chunk is complete, before
        the replies are read, so Redis runs one chunk while the next is built
        (`requests` may be a generator, consumed once): one round trip in all.
        """
        calls: list[tuple[Any, ...]] = []  # every command sent: SADD or EVALSHA
        placed: list[list[int] | None] = []  # per command, its requests' positions
        new_queues: list[str] = []
        pending: dict[tuple[str, int], tuple[list[EnqueueFields], list[int]]] = {}

        def commands() -> Iterator[tuple[Any, ...]]:
            for index, request in enumerate(requests):
                queue = request[0]
                where = (queue, level_of(request[2]))  # a priority level is its own stream
                batch = pending.get(where)
                if batch is None:
                    batch = pending[where] = ([], [])
                    if queue not in self._known_queues and queue not in new_queues:
                        new_queues.append(queue)  # registered before its first job
                        calls.append(("SADD", keys.QUEUES, queue))
                        placed.append(None)
                        yield calls[-1]
                batch[0].append(request)
                batch[1].append(index)
                if len(batch[0]) >= chunk:
                    del pending[where]
                    calls.append(self._enqueue_command(queue, batch[0], now_ms, where[1]))
                    placed.append(batch[1])
                    yield calls[-1]
            for (queue, level), (rest, positions) in pending.items():
                calls.append(self._enqueue_command(queue, rest, now_ms, level))
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
            resend = [calls[i] for i in missing]
            if self.wait is not None:
                # The chunks sent again come after the first WAIT: WAIT again behind them,
                # on their connections (on a cluster, each node they went to).
                resend.append(self.wait)
            again = self.direct.call_many(resend)
            for i, reply in zip(missing, again, strict=False):
                replies[i] = reply
            if self.wait is not None:
                replies[-1] = replicas.fewest(replies[-1], again[-1])
        if self.wait is not None:
            replicas.check(replies[-1], self.wait)
        raise_error_reply(replies)
        self._known_queues.update(new_queues)
        added: list[bool | str] = [False] * sum(len(positions) for positions in placed
                                                if positions)
        for positions, flags in zip(placed, replies, strict=True):
            if positions is not None:
                for index, flag in zip(positions, flags, strict=True):
                    added[index] = flag == 1 or holder_of(flag) or False
        return added

    # --- consuming -------------------------------------------------------

    def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create each queue's streams (its priority levels in use too) and consumer group
        if missing.

        The group starts at id 0, so jobs added before any worker existed are
        delivered too.
        """
        for queue in queues:
            for stream in levels.streams(queue, levels.read_levels(self.client, queue)):
                try:
                    self.client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
                except redis.exceptions.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    def fetch(self, consumer: str, queues: Sequence[str], count: int, block_ms: int | None,
              *, own_pending: bool = False,
              plan: Sequence[tuple[str, int]] | None = None) -> list[Delivery]:
        """Read up to `count` new entries (or, with own_pending, this consumer's unacked ones).

        Within a queue the highest priority level first; among queues as `plan`
        says ((queue, quota) in order, from core/queue_order.py; by default the
        strict order of `queues`); see broker/fetching.py.
        """
        reader = self._fetcher
        if own_pending:
            known = dict(self._each(queues, lambda queue: (
                queue, levels.read_levels(self.client, queue))))
            found = reader.own(consumer, list(known), count, known)
        else:
            if plan is None:
                plan = [(queue, count if index == 0 else 0) for index, queue in enumerate(queues)]
            found = reader.read(consumer, plan, count, block_ms)
        # Queues with cancel requests pending (their jobs are then all checked by mark_taken).
        self.cancels_seen = reader.cancels_seen
        if reader.lost:
            # The stream vanished (flushed, or Redis restarted without data):
            # recreate it and read again on the next call.
            self.ensure_groups(reader.lost)
        return found

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

    def admit_limited(self, consumer: str, by_queue: dict[str, list[Gated]],
                      now_ms: int) -> dict[str, list[Waited]]:
        """Admit the fetched jobs of limited tasks, or send them to wait (limit_take.lua):
        {queue: the jobs sent to wait}."""
        if self._gate is None:
            self._gate = LimitGate(self.direct, self.client)
        return self._gate.admit(consumer, by_queue, now_ms)

    def settle(self, consumer: str, settlements: Sequence[Settlement], now_ms: int) -> int:
        """Write outcomes and acknowledge, atomically per queue; returns how many were ours."""
        # Per queue and priority level: an entry is acknowledged in the stream it came
        # from, and a retry due now goes back to that stream (its level).
        by_stream: dict[tuple[str, int], list[tuple[str, Settlement]]] = {}
        for item in settlements:
            level, entry_id = levels.untag(item.delivery.entry_id)
            by_stream.setdefault((item.delivery.queue, level), []).append((entry_id, item))
        settled = 0
        lost: dict[str, int] = {}
        for (queue, level), pairs in by_stream.items():
            ids = sorted((entry_id for entry_id, _ in pairs), key=_entry_key)
            prefix = keys.job_prefix(queue)
            script_keys = [keys.level_stream(queue, level), keys.dead(queue), keys.delayed(queue),
                           keys.running(queue), *self._recent_keys(queue),
                           keys.cancels(queue)]
            args: list[Any] = [keys.GROUP, consumer, self.dead_letter_max, now_ms, ids[0], ids[-1]]
            items = [item for _, item in pairs]
            script_keys += [prefix + item.job_id for item in items]
            # The concurrency-slot keys and the unique locks follow the records (settle.lua
            # finds them at 10 + entries), before the workflow keys settle_flows appends.
            uniques = [unique_of(item.delivery.message) for item in items]
            script_keys += (*self._limit_keys(queue),
                            *(keys.unique(queue, digest) for digest in uniques if digest))
            # A workflow member's next step / chord count (broker/workflow.py), two values
            # after its seven, naming keys appended after the records.
            flows = workflow.settle_flows(queue, items, script_keys)
            for (entry_id, item), flow, digest in zip(pairs, flows, uniques, strict=True):
                args += _settle_args(item, entry_id)
                args += flow
                args.append(digest)
            try:
                settled += int(self._write(self._settle, self._settle.args(script_keys, args)))
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                lost[queue] = lost.get(queue, 0) + len(pairs)  # the others are still settled
        if lost:
            raise StreamLost(lost, settled)
        return settled

    def _limit_keys(self, queue: str) -> tuple[str, ...]:
        """The 15 keys settle.lua and handback.lua free concurrency slots with (cached; see
        limit_release.lua): the slot keys, then the levels set and the stream of every
        level, since a waiter woken for a freed slot goes back to its own level."""
        names = self._limits.get(queue)
        if names is None:
            held, count, waiting, _, _, waits = keys.limit_keys(queue)
            names = self._limits[queue] = (held, count, waiting, waits, keys.levels(queue),
                                           *levels.all_streams(queue))
        return names

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
        by_stream: dict[tuple[str, int], tuple[list[str], list[str | bytes]]] = {}
        for delivery, message, job_id, *written in items:
            queue = delivery.queue
            level, entry_id = levels.untag(delivery.entry_id)  # back to the stream it came from
            names, quadruples = by_stream.setdefault(
                (queue, level), ([keys.level_stream(queue, level), keys.running(queue)], []))
            names.append(keys.job(queue, job_id))
            quadruples.extend([entry_id, wire_text(message), job_id,
                               written[0] if written else ""])
        for (queue, _), (names, quadruples) in by_stream.items():
            returned += int(self._handback(keys=[*names, *self._limit_keys(queue)],
                                           args=[keys.GROUP, consumer, *quadruples]))
        return returned

    def consumers(self, queue: str) -> list[dict[str, Any]]:
        """XINFO CONSUMERS of the queue's group, over its priority levels (one entry per
        consumer name; [] when the group does not exist yet)."""
        found: dict[str, dict[str, Any]] = {}
        for stream in levels.streams(queue, levels.read_levels(self.client, queue)):
            try:
                for consumer in self.client.xinfo_consumers(stream, keys.GROUP):
                    found.setdefault(str(consumer.get("name", "")), consumer)
            except redis.exceptions.ResponseError:
                continue
        return list(found.values())

    def claim_dead(self, queue: str, dead_consumer: str, claimer: str,
                   batch: int = 500, *, node: str | None = None) -> list[Claimed]:
        """Take over every entry `dead_consumer` held, at every priority level (see
        claim_dead.lua); `node`: the consumer's node when it is another node, whose
        heartbeat on the queue's shard the script checks (nothing is claimed while it
        exists)."""
        heartbeat = [keys.queue_node(queue, node)] if node else []
        claimed: list[Claimed] = []
        for level in (*levels.read_levels(self.client, queue), 0):
            try:
                reply = self._claim_dead(keys=[keys.level_stream(queue, level), *heartbeat],
                                         args=[keys.GROUP, dead_consumer, claimer, batch])
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                continue
            claimed += [Claimed(Delivery(queue, levels.tag(level, str(entry_id)), str(message)),
                                int(idle), int(count))
                        for entry_id, message, idle, count in reply]
        return claimed

    def own_pending(self, consumer: str, queues: Sequence[str], skip: set[tuple[str, str]],
                    count: int) -> list[Delivery]:
        """This consumer's pending entries that are not in `skip` ((queue, entry id) of the
        jobs it runs), read without delivering them again: XPENDING and XRANGE leave the
        entries' idle time alone, which is how a job past its time limit is told when its
        worker is killed (XREADGROUP ... 0 would restart it)."""
        found: list[Delivery] = []
        self.cancels_seen = set(queues)  # rare path: check every job taken
        streams = [(queue, level) for queue in queues
                   for level in (*levels.read_levels(self.client, queue), 0)]
        for queue, level in streams:
            stream = keys.level_stream(queue, level)
            try:
                pending = self.client.xpending_range(stream, keys.GROUP, "-", "+",
                                                     count + len(skip), consumername=consumer)
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                continue
            for item in pending:
                entry_id = str(item["message_id"])
                if (queue, levels.tag(level, entry_id)) in skip:
                    continue
                entries = self.client.xrange(stream, entry_id, entry_id)
                if not entries:  # deleted while pending: nothing to run, only to drop
                    self.client.xack(stream, keys.GROUP, entry_id)
                    continue
                message = fields_of(entries[0][1]).get(keys.MESSAGE_FIELD, "")
                found.append(Delivery(queue, levels.tag(level, entry_id), message))
                if len(found) >= count:
                    return found
        return found

    def paused_queues(self, queues: Sequence[str]) -> set[str]:
        """Which of `queues` are paused (see broker/control.py)."""
        return set(control.paused(self.client, queues))

    def live_nodes(self, names: set[str], queue: str | None = None) -> set[str]:
        """Which of these nodes still have a heartbeat (their consumers are alive); with
        `queue`, the heartbeat on that queue's shard (see nodes.live_nodes)."""
        return nodes.live_nodes(self.client, names, queue)

    def add_done(self, counts: dict[str, int], second: int) -> None:
        """Count settled jobs per queue for `status` jobs/s (see broker/nodes.py)."""
        nodes.add_done(self.client, counts, second)

    def forward(self, queues: Iterable[str]) -> int:
        """Move workflow steps bound for other queues on (see broker/workflow.py)."""
        return sum(self._each(queues, lambda queue: workflow.forward(
            self.client, self.workflow, [queue])))

    def apply_workflow(self, calls: Iterable[tuple[list[str], str]], *,
                       wait: bool = False) -> None:
        """Run workflow.lua for each (KEYS, operations), pipelined (broker/workflow.py);
        `wait`: with --wait-replicas, WAIT behind them for the replicas."""
        workflow.apply_many(self._workflow, calls, self.wait if wait else None)

    def chord_results(self, queue: str, chord_id: str, members: int) -> list[Any]:
        """A chord's member results in order, for its callback (see broker/workflow.py)."""
        return workflow.chord_results(self.client, queue, chord_id, members)

    def promote(self, queues: Iterable[str], now_ms: int, batch: int = 1000) -> int:
        """Move due delayed jobs of `queues` into their streams."""
        return sum(self._each(queues, lambda queue: int(self._promote(
            keys=[keys.delayed(queue), *levels.all_streams(queue), keys.levels(queue)],
            args=[now_ms, batch]))))

    def _each(self, queues: Iterable[str], call: Callable[[str], T]) -> list[T]:
        """`call(queue)` for each queue; on a cluster the queues of a shard that does not
        answer are skipped for a moment (shards_away.py), raised only if none answered."""
        if self.away is None:
            return [call(queue) for queue in queues]
        return self.away.each(queues, call)
