"""Forwards: workflow operations bound for another queue's slot, moved on there.

broker/workflow.py wraps what belongs to another slot (a chain's next step in
another queue, a member's count for a chord elsewhere) into a forward pushed on
its own queue's forward list in the settle. `forward()`, a worker chore of that
queue, applies each in its target slot, then removes it. A worker killed in
between applies it again, and every operation is idempotent (a job's record is
SET NX with its id fixed when the workflow was built; a member's count is an
HSETNX of its result), so a repeat is a no-op. Of the workers of a queue, which
all move its forwards on, only the one that claimed a forward applies it
(_claim), behind a mark set in the applying script (_apply): a repeat is not
quite a no-op for a step with ignore_result, whose record is gone once it ran.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterable
from typing import Any

import redis

from supervisor.broker import error_codes, keys
from supervisor.core import jsonio

log = logging.getLogger("supervisor.workflow")

FORWARD_BATCH = 100  # forwards applied per queue and round
FORWARD_ROUNDS = 10  # rounds per call (every PROMOTE_EVERY) while batches come back full
# How long a worker's claim on a forward holds (it applies it in milliseconds): a worker
# killed while applying leaves the forward to the others after this.
FORWARD_CLAIM_SECONDS = 30
# How long the mark "this forward was applied" stays in its target slot when the worker
# that applied it died before removing it from the list (removed with it otherwise):
# longer than any wait for another worker of the queue to find the forward again.
FORWARD_DONE_SECONDS = 7 * 24 * 3600
_HASH_TAG = re.compile(r"\{([^}]*)\}")


def forward(client: Any, script: Any, queues: Iterable[str]) -> int:
    """Apply the forwards waiting in `queues`' forward lists in their target slots, in
    order, each removed after it was applied; returns how many were moved.

    Up to FORWARD_ROUNDS batches per queue and call, so a burst (the members of a chord
    whose state lives in another queue) drains quickly without starving the fetch.
    """
    moved = 0
    for queue in queues:
        name = keys.forward(queue)
        for _ in range(FORWARD_ROUNDS):
            batch = client.lrange(name, 0, FORWARD_BATCH - 1)
            mine = _claim(client, queue, name, batch)
            for at, payload in enumerate(mine):
                try:
                    done = _apply(client, script, queue, payload)
                except redis.exceptions.ResponseError:
                    # Refused for now (Redis full, failing over): every forward not
                    # applied stays listed, unclaimed, so the next round (any worker's)
                    # tries again as soon as Redis takes writes, in the same order.
                    with contextlib.suppress(redis.exceptions.RedisError):
                        client.delete(*(keys.forward_claim(queue, _digest(left))
                                        for left in mine[at:]))
                    raise
                # Removed after, then unclaimed: a worker killed in between leaves it
                # to another once the claim expires, who finds its mark and applies
                # nothing. The mark goes with it (its own slot: the target's).
                pipe = client.pipeline(transaction=False)
                pipe.lrem(name, 1, payload)
                pipe.delete(keys.forward_claim(queue, _digest(payload)))
                if done is not None:
                    pipe.delete(done)
                pipe.execute()
            moved += len(mine)
            if len(batch) < FORWARD_BATCH or not mine:
                break
    return moved


def _digest(payload: str) -> str:
    return hashlib.sha1(payload.encode()).hexdigest()


def _claim(client: Any, queue: str, name: str, batch: list[str]) -> list[str]:
    """The forwards of `batch` this worker applies: those it claimed that are still listed.

    Every worker of a queue runs forward() every PROMOTE_EVERY, so two of them read
    the same batch; each applies only what it claimed (SET NX), and only while the
    forward is still in the list (LPOS after the claim, in the same round trip: one
    applied, removed and unclaimed by another worker meanwhile is not applied again).
    A forward applied but not removed (its worker killed in between) is applied again
    by another worker once the claim expired: the mark of _apply makes that a no-op
    (without it, the job of a step whose record is gone already, ignore_result and
    run in between, would be enqueued again).
    """
    if not batch:
        return []
    pipe = client.pipeline(transaction=False)
    for payload in batch:
        pipe.set(keys.forward_claim(queue, _digest(payload)), "1", nx=True,
                 ex=FORWARD_CLAIM_SECONDS)
        pipe.lpos(name, payload)
    replies = pipe.execute()
    mine, lost = [], []
    for index, payload in enumerate(batch):
        claimed, listed = replies[2 * index], replies[2 * index + 1]
        if claimed and listed is not None:
            mine.append(payload)
        elif claimed:
            lost.append(keys.forward_claim(queue, _digest(payload)))
    if lost:  # claimed after another worker's removal: nothing to do, unclaim
        client.delete(*lost)  # one slot: every claim has the queue's hash tag
    return mine


def _apply(client: Any, script: Any, queue: str, payload: str) -> str | None:
    """Apply one forward once: its operations run behind a mark (SET NX, in the target
    slot, by the payload's digest) in the same script, so a second application finds
    the mark and does nothing; returns the mark's key, to delete once the forward is
    removed. One that cannot be applied (not ours: a bug or a foreign write) is set
    aside in the queue's forward:failed list with an error logged, never retried
    forever in front of the others; one Redis refuses for now (full, failing over)
    raises and stays listed."""
    try:
        data = jsonio.loads(payload)
        names = list(data["k"])
        tag = _HASH_TAG.search(names[0])
        if tag is None:
            raise ValueError(f"forward keys without a hash tag: {names[0]!r}")
        done = keys.forward_done(tag.group(1), _digest(payload))
        ops = [["once", len(names) + 1, FORWARD_DONE_SECONDS], *data["o"]]
        script(keys=[*names, done], args=[jsonio.dumps(ops)])
        return done
    except redis.exceptions.ResponseError as exc:
        if error_codes.refused_for_now(exc):
            raise  # the server's state, not the forward's fault: kept, tried again
        _set_aside(client, queue, payload, exc)
        return None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        _set_aside(client, queue, payload, exc)
        return None


def _set_aside(client: Any, queue: str, payload: str, exc: BaseException) -> None:
    """Park a forward that can never be applied where an operator can read it."""
    log.error("workflow forward of queue %s not applied (%s); kept in %s", queue, exc,
              keys.forward_failed(queue))
    client.rpush(keys.forward_failed(queue), payload)
