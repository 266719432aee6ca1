"""The job message: schema, JSON encoding and strict validation.

A job travels as one JSON object in the stream field `m`. JSON only, never
pickle: a message from the network must not be able to run code by being
decoded. Anything that does not decode or does not follow the schema is
refused with `InvalidMessage`, and the worker dead-letters it as `invalid`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from supervisor import jsonio
from supervisor.errors import InvalidMessage, PayloadTooLarge

SCHEMA_VERSION = 1
MESSAGE_FIELD = "m"


MAX_ID_LENGTH = 200


def new_job_id() -> str:
    return uuid.uuid4().hex


def check_job_id(job_id: str) -> str:
    """A job id is 1-200 printable characters without whitespace (it is part of key names)."""
    if not job_id or len(job_id) > MAX_ID_LENGTH or not job_id.isprintable() \
            or any(char.isspace() for char in job_id):
        raise ValueError(f"invalid job id {job_id!r}: use 1-{MAX_ID_LENGTH} printable "
                         "characters without spaces")
    return job_id


@dataclass(frozen=True, slots=True)
class Job:
    """One job. `attempt` is 1 for the first run and grows with each retry.

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

    def encode(self, limit: int | None = None) -> str:
        try:
            text = jsonio.dumps(
                {
                    "v": SCHEMA_VERSION,
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
                },
            )
        except (TypeError, ValueError) as exc:
            raise InvalidMessage(
                f"arguments of {self.task} are not JSON-serialisable: {exc}; "
                "pass plain data (str, int, float, bool, None, list, dict)"
            ) from None
        size = len(text) if text.isascii() else len(text.encode())
        if limit is not None and size > limit:
            raise PayloadTooLarge(
                f"job for {self.task} is {size} bytes, over the limit of {limit}; "
                "store large data elsewhere and pass a reference, or raise max_payload_bytes"
            )
        return text

    def next_attempt(self, this_attempt: dict[str, Any]) -> Job:
        """The message of the next attempt, remembering how this one ended."""
        return replace(self, attempt=self.attempt + 1, history=(*self.history, this_attempt))

    def after_crash(self) -> Job:
        return replace(self, crashes=self.crashes + 1)


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InvalidMessage(f"field {key!r} is missing or not {getattr(kind, '__name__', kind)}")
    return value


def decode(text: str | bytes) -> Job:
    """Parse and validate a message; raise InvalidMessage saying what is wrong."""
    try:
        data = jsonio.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidMessage("message is not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise InvalidMessage(f"unsupported message version {data.get('v')!r}")
    job_id = _require(data, "id", str)
    try:
        check_job_id(job_id)
    except ValueError as exc:
        raise InvalidMessage(str(exc)) from None
    return Job(
        id=job_id,
        task=_require(data, "task", str),
        queue=_require(data, "queue", str),
        args=tuple(_require(data, "args", list)),
        kwargs=_require(data, "kwargs", dict),
        attempt=_require(data, "attempt", int),
        crashes=_require(data, "crashes", int),
        created=float(_require(data, "created", (int, float))),
        host=str(data.get("host", "")),
        history=tuple(item for item in data.get("h", ()) if isinstance(item, dict)),
    )


def peek_id(text: str | bytes) -> str | None:
    """Best-effort job id of a message that failed validation (for the dead letter)."""
    try:
        data = jsonio.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    try:
        return check_job_id(value) if isinstance(value, str) else None
    except ValueError:
        return None
