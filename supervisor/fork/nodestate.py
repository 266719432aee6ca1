"""The node's state as one JSON document in shared memory: written by the master, read by workers.

The master must never block on Redis, yet `supervisor status` on any host
wants to see this node. So the master writes a snapshot of what it knows
(its pool, each child's status block, psutil's numbers) into an anonymous
shared mapping created *before* the first fork, which every child therefore
maps too (it reaches the child in its ChildContext); a worker, which talks to
Redis anyway, copies the bytes into Redis every couple of seconds (see
worker/chores.py). The master writes; it never waits on anyone.

One writer, many readers, no lock: a sequence lock. The writer makes the
sequence odd, writes length and payload, then makes it even again; a reader
copies the payload between two reads of the sequence and retries when they
differ or are odd (a torn read). A reader never blocks the writer.

No redis import here: this module is on the master side.
"""

from __future__ import annotations

import json
import mmap
import struct
import time
from typing import Any

_HEADER = struct.Struct("=QQ")  # sequence, payload length
_SEQ = struct.Struct("=Q")
DEFAULT_SIZE = 1 << 20  # 1 MiB: ~3000 workers' worth; pages are touched only as written
READ_TRIES = 200


class NodeStateBuffer:
    """The shared block. Create in the master before forking; children inherit the mapping."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._map = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS: survives fork
        self._seq = 0
        self.closed = False

    @property
    def capacity(self) -> int:
        return self.size - _HEADER.size

    # --- the writer (master) ------------------------------------------------

    def write(self, payload: bytes) -> bool:
        """Publish `payload` (bytes of one JSON document); False if it does not fit."""
        if len(payload) > self.capacity:
            return False
        self._seq += 1  # odd: a write is in progress
        _SEQ.pack_into(self._map, 0, self._seq)
        self._map[_HEADER.size:_HEADER.size + len(payload)] = payload
        struct.pack_into("=Q", self._map, _SEQ.size, len(payload))
        self._seq += 1  # even: consistent again
        _SEQ.pack_into(self._map, 0, self._seq)
        return True

    def write_state(self, state: dict[str, Any]) -> bool:
        """Encode and publish a snapshot; drop workers from the tail if it is too big."""
        payload = json.dumps(state, separators=(",", ":")).encode()
        if self.write(payload):
            return True
        workers = list(state.get("workers", []))
        while workers:
            workers = workers[: len(workers) // 2]
            payload = json.dumps({**state, "workers": workers, "truncated": True},
                                 separators=(",", ":")).encode()
            if self.write(payload):
                return True
        return False

    # --- the readers (workers) ------------------------------------------------

    def read(self, tries: int = READ_TRIES) -> bytes | None:
        """A consistent copy of the last payload; None if nothing was written yet or
        every try met a write in progress (the caller tries again next time)."""
        for attempt in range(tries):
            first, length = _HEADER.unpack_from(self._map, 0)
            if first and not first & 1 and length <= self.capacity:
                payload = self._map[_HEADER.size:_HEADER.size + length]
                (second,) = _SEQ.unpack_from(self._map, 0)
                if first == second:
                    return payload
            elif first == 0:
                return None
            if attempt > 10:
                time.sleep(0.0001)
        return None

    def read_state(self) -> dict[str, Any] | None:
        payload = self.read()
        if payload is None:
            return None
        data = json.loads(payload)
        return data if isinstance(data, dict) else None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._map.close()
