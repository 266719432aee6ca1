"""A middleware for the control tests: records on_cancel and after_attempt in Redis."""

from __future__ import annotations

import os

import redis

from supervisor import AttemptInfo, Middleware


class Record(Middleware):
    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)

    def after_attempt(self, attempt: AttemptInfo) -> None:
        self._client().rpush("t:after_attempt", f"{attempt.job_id} {attempt.outcome}")

    def on_cancel(self, attempt: AttemptInfo) -> None:
        self._client().rpush("t:on_cancel",
                             f"{attempt.job_id} {type(attempt.error).__name__}")
