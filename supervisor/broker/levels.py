"""Priority levels of a queue on Redis: one stream per level in use, one consumer group.

Level 0 is the queue's own stream (`sv:{q}:stream`); a level N > 0 used by
some job has `sv:{q}:stream:pN` and is listed in `sv:{q}:levels`, written
before the level's first job (so a worker that reads the set sees every
level that holds a job). All share the queue's hash tag: one slot, so a
script may read them together on a cluster.

Entry ids repeat across streams, and a worker tells the jobs it holds apart
by (queue, entry id): the entry id of a delivery from level N > 0 is tagged
`N/<id>` here, so that pair stays unique without the worker knowing about
levels, and every broker call that takes a delivery back (settle, hand back)
finds its stream from it. Level-0 ids are left as Redis gave them: a queue
without priorities works exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.broker import keys
from supervisor.core.priority import LEVELS


def tag(level: int, entry_id: str) -> str:
    """The delivery's entry id of `entry_id` read from level `level`."""
    return f"{level}/{entry_id}" if level else entry_id


def untag(entry_id: str) -> tuple[int, str]:
    """(level, the stream's own entry id) of a delivery's entry id."""
    if "/" not in entry_id:
        return 0, entry_id
    level, _, raw = entry_id.partition("/")
    return int(level), raw


def stream_order(entry_id: str) -> tuple[int, int]:
    """Sort key of a stream's own entry id ("<ms>-<seq>"): the order Redis added them."""
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def parse_set(members: Iterable[object]) -> tuple[int, ...]:
    """The levels above 0 of a levels set's members, highest first (junk is ignored)."""
    found = {int(m) for m in (str(member) for member in members)
             if m.isdigit() and 0 < int(m) < len(LEVELS)}
    return tuple(sorted(found, reverse=True))


def streams(queue: str, levels: Iterable[int]) -> list[str]:
    """The streams of `levels` (above 0) and of level 0, highest level first."""
    return [*(keys.level_stream(queue, level) for level in levels), keys.stream(queue)]


def all_streams(queue: str) -> list[str]:
    """Every possible level stream of a queue, level 0 first (declared to scripts)."""
    return [keys.level_stream(queue, level) for level in LEVELS]


def read_levels(client: object, queue: str) -> tuple[int, ...]:
    """The queue's levels above 0 in use (one SMEMBERS; for the rare paths)."""
    return parse_set(client.smembers(keys.levels(queue)) or ())  # type: ignore[attr-defined]


# --- fetch.lua: its KEYS and ARGV, and its reply ------------------------------

KEYS_PER_QUEUE = 11  # the levels set, then the streams of levels 0..9


def fetch_keys(queue: str) -> list[str]:
    """The 11 keys fetch.lua declares for a queue (see its header)."""
    return [keys.levels(queue), *all_streams(queue)]


def fetch_call(plan: list[tuple[str, int]], group: str, consumer: str,
               total: int, lowest: int = 0) -> tuple[list[str], list[object]]:
    """The KEYS and ARGV of fetch.lua reading `total` entries as `plan` says (levels from
    `lowest` up: 1 skips level 0)."""
    names: list[str] = []
    for queue, _ in plan:
        names += fetch_keys(queue)
    return names, [group, consumer, total, lowest, *(quota for _, quota in plan)]


def fetch_reply(queues: list[str], reply: list[object],
                seen: dict[str, tuple[int, ...]]) -> list[tuple[str, str, str]]:
    """(queue, tagged entry id, message) of a fetch.lua reply, in its order; the levels
    each queue uses go into `seen`."""
    count = len(queues)
    for queue, listed in zip(queues, reply[:count], strict=True):
        text = str(listed)
        seen[queue] = tuple(int(part) for part in text.split(",")) if text else ()
    found: list[tuple[str, str, str]] = []
    for at in range(count, len(reply), 4):
        index, level, entry_id, message = reply[at:at + 4]
        found.append((queues[int(index) - 1], tag(int(level), str(entry_id)), str(message)))  # type: ignore[call-overload]
    return found


def blocking_streams(queue: str, known: dict[str, tuple[int, ...]]) -> dict[str, tuple[str, int]]:
    """stream -> (queue, level) of the streams a blocking read of `queue` waits on."""
    listed = known.get(queue, ())
    return {keys.level_stream(queue, level): (queue, level) for level in (*listed, 0)}
