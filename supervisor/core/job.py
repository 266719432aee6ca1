"""The job message: schema, JSON encoding and strict validation.

A job travels as one JSON object, the one field of its stream entry
(`broker.keys.MESSAGE_FIELD`). JSON only, never
pickle: a message from the network must not be able to run code by being
decoded. Anything that does not decode or does not follow the schema is
refused with `InvalidMessage`, and the worker dead-letters it as `invalid`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from supervisor.core import jsonio
from supervisor.core.priority import MAX_PRIORITY
from supervisor.errors import InvalidMessage, PayloadTooLarge

SCHEMA_VERSION = 1
MAX_ID_LENGTH = 200


# Job ids: 128 random bits as 32 hex digits (what uuid4().hex gives), from a
# generator of this module's own rather than a getrandom() system call per id
# (about 0.3 instead of 0.7-0.8 us here). Seeded from os.urandom, and again in
# a forked child so parent and child never share a sequence; private, so a
# program's random.seed() cannot make ids repeat. Unique, not secret: knowing
# an id grants nothing (writing Redis needs access to Redis).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_job_id() -> str:
    """A fresh job id: 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"


def check_job_id(job_id: str) -> str:
    """A job id is 1-200 printable characters without whitespace (it is part of key names)."""
    # isprintable() is False for every whitespace but the ASCII space (checked apart).
    if not job_id or len(job_id) > MAX_ID_LENGTH or not job_id.isprintable() or " " in job_id:
        raise ValueError(f"invalid job id {job_id!r}: use 1-{MAX_ID_LENGTH} printable "
                         "characters without spaces")
    return job_id


@dataclass(slots=True)
class Job:
    """One job. `attempt` is 1 for the first run and grows with each retry.

    Treat it as immutable (next_attempt / after_crash return new jobs). It is
    not declared frozen only because a frozen dataclass sets each field
    through object.__setattr__, which triples the cost of building one, and
    every job a worker runs is built once.

    `crashes` counts workers that died while running it (it travels in the
    message because a job handed back to the queue is a new stream entry,
    which restarts the stream's own delivery counter).
    """

    id: str
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    crashes: int = 0
    created: float = field(default_factory=time.time)
    host: str = ""  # the enqueuing host, for the job's timeline
    # Earlier attempts (one small dict each), carried in the message so the
    # worker can write the job's whole record at the end without reading it.
    history: tuple[dict[str, Any], ...] = ()
    # Times workers that did not know its task gave it back for one that does
    # (a rolling deploy, pools serving different task sets on one queue), and
    # when that first happened (epoch seconds).
    given_back: int = 0
    given_back_at: float = 0.0
    # Headers (str -> str): set by producers and their hooks (a trace context,
    # a tenant, a request id), read by the task and the worker's hooks. They
    # live in the message, so every attempt, retry, hand-back and requeue
    # carries them (replace() copies them), counted in max_payload_bytes.
    headers: dict[str, str] = field(default_factory=dict)
    # Its worker died while it ran beside other jobs (--concurrency > 1, or a
    # batch held): any of them may have killed it, so none is counted a crash;
    # a suspect runs alone until it ends (cleared) or kills a worker alone
    # (a crash that counts toward max_crashes). See core/orphan.py.
    suspect: bool = False
    # Not started by then (epoch seconds), it is not run: `cancelled`, reason
    # `expired` (0: never expires).
    expires: float = 0.0
    # 0-9, higher runs first (core/priority.py); it travels in the message so that
    # retries, hand-backs and requeues go back to their level.
    priority: int = 0
    # Its place in a workflow (chain, group, chord; core/canvas.py): the steps that follow
    # it, the chord it feeds, the chord whose results it takes. None for a plain job.
    workflow: dict[str, Any] | None = None
    # The digest of its unique lock (sv:{q}:unique:<digest>), '' when its task is not
    # unique: settling it for good releases the lock (settle.lua). Written last in the
    # message, so the worker finds it with one rfind (broker/settling.unique_of).
    unique: str = ""

    def encode(self, limit: int | None = None) -> str:
        data: dict[str, Any] = {"v": SCHEMA_VERSION}
        if self.priority:  # right after "v", where the broker reads it (core/priority.py)
            data["pr"] = self.priority
        data.update({
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "attempt": self.attempt,
            "crashes": self.crashes,
            "created": self.created,
            "host": self.host,
            "h": list(self.history),
        })
        if self.given_back:  # optional: absent from almost every message
            data["given_back"] = self.given_back
            data["given_back_at"] = self.given_back_at
        if self.headers:  # optional too: no bytes for a job without headers
            data["hd"] = self.headers
        if self.suspect:  # optional: absent from almost every message
            data["suspect"] = True
        if self.expires:  # optional
            data["expires"] = self.expires
        if self.workflow is not None:  # optional: only members of a workflow
            data["wf"] = self.workflow
        if self.unique:  # optional, and the last key (see `unique`)
            data["uq"] = self.unique
        try:
            text = jsonio.dumps(data)
        except (TypeError, ValueError) as exc:
            raise InvalidMessage(
                f"arguments of {self.task} are not JSON-serialisable: {exc}; "
                "pass plain data (str, int, float, bool, None, list, dict)"
            ) from None
        size = len(text) if text.isascii() else len(text.encode())
        if limit is not None and size > limit:
            # Headers count: say how much, since a before_enqueue hook may have added them.
            of_headers = (f" ({len(jsonio.dumps(self.headers).encode())} bytes of it headers,"
                          " the caller's and those added by before_enqueue hooks)"
                          if self.headers else "")
            raise PayloadTooLarge(
                f"job for {self.task} is {size} bytes{of_headers}, over the limit of {limit}; "
                "store large data elsewhere and pass a reference, or raise max_payload_bytes"
            )
        return text

    def next_attempt(self, this_attempt: dict[str, Any]) -> Job:
        """The message of the next attempt, remembering how this one ended."""
        # It ran to its end: whatever killed its worker before, it was not this job.
        return replace(self, attempt=self.attempt + 1, history=(*self.history, this_attempt),
                       suspect=False)

    def after_crash(self, entry: dict[str, Any] | None = None) -> Job:
        """The message handed back after its worker died running it alone (`entry`: how,
        for the history); it stays a suspect, so it runs alone again."""
        history = self.history if entry is None else (*self.history, entry)
        return replace(self, crashes=self.crashes + 1, history=history,
                       suspect=self.suspect)

    def after_shared_crash(self, entry: dict[str, Any]) -> Job:
        """The message handed back after its worker died while it ran beside other jobs:
        not counted a crash (it may be innocent), a suspect that runs alone next."""
        return replace(self, history=(*self.history, entry), suspect=True)

    def after_interruption(self, entry: dict[str, Any]) -> Job:
        """The message handed back after a quick stop cut its attempt short (same attempt)."""
        return replace(self, history=(*self.history, entry))

    def given_back_by(self, entry: dict[str, Any], now: float) -> Job:
        """The message handed on by a worker that does not know the task (same attempt).

        Only the first give-back goes into the history (the timeline shows when
        it began); later ones raise the count.
        """
        if self.given_back:
            return replace(self, given_back=self.given_back + 1)
        return replace(self, given_back=1, given_back_at=now, history=(*self.history, entry))


# Required fields and their JSON types; `type(value) is kind` also refuses
# booleans where integers are expected (True is an int to isinstance).
_REQUIRED: tuple[tuple[str, type], ...] = (
    ("id", str), ("task", str), ("queue", str), ("args", list), ("kwargs", dict),
    ("attempt", int), ("crashes", int),
)


def decode(text: str | bytes) -> Job:
    """Parse and validate a message; raise InvalidMessage saying what is wrong."""
    try:
        data = jsonio.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"message is not valid JSON: {exc}") from None
    if type(data) is not dict:
        raise InvalidMessage("message is not a JSON object")
    try:
        job_id, task, queue, args, kwargs = (data["id"], data["task"], data["queue"],
                                             data["args"], data["kwargs"])
        attempt, crashes, created = data["attempt"], data["crashes"], data["created"]
    except KeyError:
        _refuse(data)
    # One test for the well-formed message (every job a worker runs); the
    # slow path only runs to name what is wrong.
    if not (data.get("v") == SCHEMA_VERSION and type(job_id) is str and type(task) is str
            and type(queue) is str and type(args) is list and type(kwargs) is dict
            and type(attempt) is int and type(crashes) is int
            and (type(created) is float or type(created) is int)
            and 0 < len(job_id) <= MAX_ID_LENGTH and job_id.isprintable()
            and " " not in job_id):
        _refuse(data)
    history = data.get("h")
    given_back, given_back_at = data.get("given_back", 0), data.get("given_back_at", 0.0)
    expires = data.get("expires", 0.0)
    headers = data.get("hd")
    priority = data.get("pr", 0)
    if priority and (type(priority) is not int or not 0 < priority <= MAX_PRIORITY):
        raise InvalidMessage(f"field 'pr' (priority) must be an integer 0-{MAX_PRIORITY}, "
                             f"got {priority!r}")
    if headers is not None:
        headers = check_headers(headers, InvalidMessage)
    flow = data.get("wf")
    if flow is not None and type(flow) is not dict:
        raise InvalidMessage("field 'wf' (its place in a workflow) is not an object")
    return Job(job_id, task, queue, tuple(args), kwargs, attempt, crashes, float(created),
               str(data.get("host", "")),
               tuple(item for item in history if type(item) is dict) if history else (),
               given_back if type(given_back) is int else 0,
               float(given_back_at) if type(given_back_at) in (int, float) else 0.0,
               headers or {}, data.get("suspect") is True,
               float(expires) if type(expires) in (int, float) else 0.0, priority, flow,
               _text(data.get("uq")))


def _text(value: object) -> str:
    return value if type(value) is str else ""


MAX_HEADER_NAME = 200


def check_headers(headers: object, error: type[Exception] = ValueError) -> dict[str, str]:
    """Headers are a map of names (1-200 characters) to strings; raise `error` otherwise."""
    if type(headers) is not dict:
        raise error(f"headers must be a dict of str to str, not {type(headers).__name__}")
    for name, value in headers.items():
        if type(name) is not str or not 0 < len(name) <= MAX_HEADER_NAME:
            raise error(f"header name {name!r} is not a string of 1-{MAX_HEADER_NAME} "
                        "characters")
        if type(value) is not str:
            raise error(f"header {name!r} is {type(value).__name__}, not str: headers carry "
                        "strings (encode other values, e.g. as JSON)")
    return headers


def _refuse(data: dict[str, Any]) -> NoReturn:
    """Raise InvalidMessage naming the first thing wrong with a decoded message."""
    if data.get("v") != SCHEMA_VERSION:
        raise InvalidMessage(f"unsupported message version {data.get('v')!r}")
    for key, kind in _REQUIRED:
        if type(data.get(key)) is not kind:
            raise InvalidMessage(f"field {key!r} is missing or not {kind.__name__}")
        if key == "id":
            try:
                check_job_id(data["id"])
            except ValueError as exc:
                raise InvalidMessage(str(exc)) from None
    raise InvalidMessage("field 'created' is missing or not a number")


def _peek(text: str | bytes) -> dict[str, Any]:
    try:
        data = jsonio.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def peek_id(text: str | bytes) -> str | None:
    """Best-effort job id of a message that failed validation (for the dead letter)."""
    value = _peek(text).get("id")
    try:
        return check_job_id(value) if isinstance(value, str) else None
    except ValueError:
        return None


def peek_task(text: str | bytes) -> str:
    """Best-effort task name of a message that failed validation ('' if none)."""
    return str(_peek(text).get("task", ""))
