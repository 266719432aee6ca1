"""Control over jobs and queues in Redis: cancel a job, pause and resume a queue.

Each request is stored in Redis (not in worker memory), so it holds across
restarts of workers, nodes and of Redis itself (with persistence). A cancel
is one script on the job's queue's keys (cancel.lua); a pause is one key per
queue, which every worker reads at most once a second per queue set.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from supervisor.broker import keys, levels, scripts
from supervisor.core import jsonio
from supervisor.core.record import CANCELLED


class CancelReply(NamedTuple):
    """What a cancel did: `what` is 'cancelled' (it will never start), 'running' (its
    worker stops it, unless it ends first), 'ended' (too late: `state` is its final
    state) or 'unknown' (no such job, or its record expired)."""

    job_id: str
    queue: str | None
    what: str
    state: str


def _cancel_call(queue: str, job_id: str, by: str, reason: str, at: float
                 ) -> tuple[list[str], list[str]]:
    """cancel.lua's KEYS and ARGV (see its header)."""
    info = jsonio.dumps({"by": by, "at": at, "reason": reason})
    return ([keys.job(queue, job_id), keys.running(queue), keys.cancels(queue),
             keys.recent(queue, CANCELLED)], [job_id, info, repr(at)])


def cancel(client: Any, queue: str, job_id: str, by: str, reason: str = "requested",
           now: float | None = None) -> CancelReply:
    """Ask for `job_id` of `queue` to be cancelled (see cancel.lua for the guarantees)."""
    script_keys, args = _cancel_call(queue, job_id, by, reason,
                                     time.time() if now is None else now)
    script_keys += _lock_of(queue, client.get(script_keys[0]))
    what, state = scripts.load(client, "cancel")(keys=script_keys, args=args)
    return CancelReply(job_id, queue, str(what), str(state))


def _lock_of(queue: str, raw: Any) -> list[str]:
    """[the unique lock key] of a job whose record names one, else [] (cancel.lua's
    KEYS[5]: read first, since a key the script made itself is not declared)."""
    if not raw:
        return []
    found = re.search(r'"unique":"([0-9a-f]+)"', raw if isinstance(raw, str) else raw.decode())
    return [keys.unique(queue, found.group(1))] if found else []


async def acancel(aclient: Any, queue: str, job_id: str, by: str, reason: str = "requested",
                  ) -> CancelReply:
    """cancel() over a redis.asyncio client."""
    script_keys, args = _cancel_call(queue, job_id, by, reason, time.time())
    script_keys += _lock_of(queue, await aclient.get(script_keys[0]))
    script = aclient.register_script(scripts.source("cancel"))
    what, state = await script(keys=script_keys, args=args)
    return CancelReply(job_id, queue, str(what), str(state))


def jobs_of(client: Any, queue: str, task: str | None = None) -> list[str]:
    """Ids of the jobs of `queue` not ended yet (queued, delayed, retrying or running),
    only those of `task` if given: what a cancel by queue or by task applies to."""
    from supervisor.core.job import decode  # a message that does not decode is skipped
    from supervisor.errors import InvalidMessage

    found: list[str] = []
    seen: set[str] = set()
    messages = [str(fields.get(keys.MESSAGE_FIELD, ""))
                for stream in levels.streams(queue, levels.read_levels(client, queue))
                for _, fields in client.xrange(stream)]
    messages += [str(member) for member in client.zrange(keys.delayed(queue), 0, -1)]
    for message in messages:
        try:
            job = decode(message)
        except InvalidMessage:
            continue
        if (task is None or job.task == task) and job.id not in seen:
            seen.add(job.id)
            found.append(job.id)
    return found


def retry_now(client: Any, queue: str, job_id: str, now_ms: int | None = None) -> bool:
    """Make a scheduled or retrying job of `queue` due now: its message in the delayed
    set gets `now` as its score, and the next promote turn of any worker moves it to
    the stream. False when it does not wait there (unknown, queued, running, ended).

    The set is scanned (ZSCAN, a page at a time: the message is the member, its id
    inside it); ZADD XX then changes nothing if the job was promoted meanwhile."""
    key = keys.delayed(queue)
    needle = jsonio.dumps({"id": job_id})[1:-1]  # '"id":"..."' as the message has it
    pattern = "*" + "".join("\\" + c if c in "*?[]\\" else c for c in needle) + "*"
    when = int(time.time() * 1000) if now_ms is None else now_ms
    for member, _ in client.zscan_iter(key, match=pattern, count=1000):
        try:
            found = jsonio.loads(member).get("id")
        except ValueError:
            continue
        if found == job_id:
            return bool(client.zadd(key, {member: when}, xx=True, ch=True))
    return False


def pause(client: Any, queue: str, by: str) -> None:
    """Pause `queue`: workers stop taking its jobs within about a second."""
    client.set(keys.paused(queue), jsonio.dumps({"by": by, "at": time.time()}))


def resume(client: Any, queue: str) -> bool:
    """Resume `queue`; False if it was not paused."""
    return bool(client.delete(keys.paused(queue)))


def paused(client: Any, queues: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The paused ones of `queues`: queue -> {by, at}. One command per queue, pipelined
    (each key has its own queue's hash tag: no multi-key command across queues)."""
    if not queues:
        return {}
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.get(keys.paused(queue))
    found: dict[str, dict[str, Any]] = {}
    for queue, raw in zip(queues, pipe.execute(), strict=True):
        if raw is not None:
            try:
                data = jsonio.loads(raw)
            except ValueError:
                data = {}
            found[queue] = data if isinstance(data, dict) else {}
    return found


def cancel_requests(client: Any, running: dict[str, list[str]],
                    ) -> dict[tuple[str, str], str]:
    """Of the jobs running here ({queue: [job id]}), those asked to be cancelled: (queue,
    job id) -> the cancel JSON. One HMGET per queue, pipelined (what a worker polls while
    jobs run)."""
    names = [queue for queue, ids in running.items() if ids]
    if not names:
        return {}
    pipe = client.pipeline(transaction=False)
    for queue in names:
        pipe.hmget(keys.cancels(queue), running[queue])
    found: dict[tuple[str, str], str] = {}
    for queue, infos in zip(names, pipe.execute(), strict=True):
        for job_id, info in zip(running[queue], infos, strict=True):
            if info is not None:
                found[queue, job_id] = str(info)
    return found
