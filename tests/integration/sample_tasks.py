"""Tasks for the integration tests. Each records what happened in Redis.

Imported by worker subprocesses with `--tasks sample_tasks` (PYTHONPATH set
to this folder) and by the tests themselves to enqueue.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from tenacity import retry_if_exception_type, stop_after_attempt, wait_fixed

from supervisor import Reject, TaskContext, task

# lazy_redis lives in the tests' folder: workers have only this one on their path.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from lazy_redis import LazyRedis  # noqa: E402

recorder = LazyRedis(lambda: os.environ["SUPERVISOR_REDIS_URL"], decode_responses=True)


def note_start(self: TaskContext) -> None:
    recorder().rpush(f"t:starts:{self.request.id}", repr(time.time()))


@task
def echo(x: Any, y: Any = None) -> list[Any]:
    return [x, y]


@task(bind=True)
def stamp(self: TaskContext) -> float:
    """Records when it started (for countdown / eta tests)."""
    note_start(self)
    return time.time()


@task(bind=True)
def count_run(self: TaskContext) -> int:
    """Counts executions per job id (exactly-once accounting)."""
    return int(recorder().hincrby("t:runs", self.request.id, 1))


@task(bind=True)
def always_fails(self: TaskContext) -> None:
    note_start(self)
    raise ValueError(f"attempt {self.request.attempt} fails")


@task(bind=True, stop=stop_after_attempt(4), wait=wait_fixed(0.2),
      retry=retry_if_exception_type(ValueError))
def custom_policy(self: TaskContext, error: str = "value") -> None:
    note_start(self)
    if error == "value":
        raise ValueError("retry me")
    raise TypeError("do not retry me")


@task(bind=True, max_retries=5)
def asks_retry(self: TaskContext) -> int:
    note_start(self)
    if self.request.attempt < 3:
        raise self.retry(countdown=0.1)
    return self.request.attempt


@task
def rejects() -> None:
    raise Reject("not today")


@task(timeout=0.5, stop=stop_after_attempt(1))
def overruns(seconds: float = 5.0) -> None:
    time.sleep(seconds)


@task
def bad_result() -> Any:
    return object()


@task(result_ttl=3)
def short_lived() -> str:
    return "gone soon"


@task(bind=True)
def slow(self: TaskContext, seconds: float) -> str:
    note_start(self)
    time.sleep(seconds)
    recorder().hincrby("t:runs", self.request.id, 1)
    return "done"


@task(bind=True)
def dies(self: TaskContext) -> None:
    """Kills its own worker every time: a poison pill."""
    note_start(self)
    os._exit(9)


@task
def quick() -> str:
    return "ok"


@task(ignore_result=True, bind=True)
def fire_and_forget(self: TaskContext) -> str:
    recorder().hincrby("t:runs", self.request.id, 1)
    return "not kept"


@task(bind=True, queue="qa")
def count_run_qa(self: TaskContext) -> str:
    """count_run on queue qa (enqueue_many takes the queue from the task)."""
    recorder().hincrby("t:runs", self.request.id, 1)
    return "qa"


@task(bind=True, queue="qb")
def count_run_qb(self: TaskContext) -> str:
    recorder().hincrby("t:runs", self.request.id, 1)
    return "qb"


def _note(job_id: str) -> None:
    """Append the job id to the file T_NOTES names: counts runs without writing to Redis
    (for tests where Redis refuses writes)."""
    with open(os.environ["T_NOTES"], "a", encoding="utf-8") as notes:
        notes.write(job_id + "\n")


@task(bind=True)
def noted(self: TaskContext, seconds: float = 0.0) -> str:
    _note(self.request.id)
    time.sleep(seconds)
    return "noted"


@task(bind=True)
def exits(self: TaskContext, code: int = 3) -> None:
    """Raises SystemExit from inside the task."""
    _note(self.request.id)
    raise SystemExit(code)


@task(bind=True)
def interrupts(self: TaskContext) -> None:
    """Raises KeyboardInterrupt from inside the task (not a signal)."""
    _note(self.request.id)
    raise KeyboardInterrupt


@task(bind=True, max_retries=2)
def fails_once_with_cause(self: TaskContext) -> int:
    """The first attempt fails with a RuntimeError passed to self.retry."""
    if self.request.attempt == 1:
        try:
            raise RuntimeError("simulated failure")
        except RuntimeError as exc:
            raise self.retry(exc=exc, countdown=0.1) from exc
    return self.request.attempt


@task
def big_result(size: int) -> str:
    return "x" * size
