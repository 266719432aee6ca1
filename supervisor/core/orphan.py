"""What becomes of a job whose worker died holding it (pure decision, no Redis).

- it had run past its task's timeout: the master killed it for that, so it
  fails with reason `timeout` under the task's retry policy;
- its worker held other jobs too (it ran K at once, or held a batch): any of
  them may have killed it, so none is blamed; it goes back as a *suspect*,
  its crash count unchanged, and a suspect runs alone (the only job its
  worker holds) until it ends, which clears it;
- it was the only job its worker held: that death is its doing; once it has
  killed `max_crashes` workers it is a poison pill, dead-lettered with reason
  `crashed`; otherwise it goes back with its crash count raised (and stays a
  suspect: it runs alone again).

So an innocent job that merely shared a child with a poison pill is never
dead-lettered as `crashed`: only deaths while running alone count. When the
cause of the death is known -- one of the jobs ran past its time limit, so
the master killed the child for it -- the others are not suspects either:
they go back as they were (`innocent`).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from supervisor.core import outcome, record
from supervisor.core.job import Job
from supervisor.core.outcome import Outcome, TaskRules
from supervisor.errors import JobTimeout

TIMED_OUT = "timed out"  # settle `outcome`: a failed attempt (reason timeout)
POISON = "poison"  # settle `outcome`: dead-lettered (reason crashed)
REQUEUE = "requeue"  # hand `message` back to the queue


class Verdict(NamedTuple):
    """The fate of an orphaned job: settle `outcome`, or requeue `message`."""

    kind: str  # TIMED_OUT, POISON or REQUEUE
    outcome: Outcome | None
    message: str  # REQUEUE: the job's message with its crash count raised
    crashes: int  # workers it has killed, this one included
    record: str = ""  # REQUEUE: the job's record, queued, the death in its history


def verdict(job: Job, task: TaskRules, message: str, idle_ms: int, dead: str,
            max_crashes: int, ttl: int, *, alone: bool = True) -> Verdict:
    """Judge a job `dead` held for `idle_ms` (its stream entry's idle time) when it died;
    `alone`: it was the only job `dead` held."""
    now = time.time()
    attempt = record.Attempt(dead, now - idle_ms / 1000, now)
    if task.timeout and idle_ms / 1000 >= task.timeout:
        exc = JobTimeout(f"job exceeded its timeout of {task.timeout}s; worker killed")
        return Verdict(TIMED_OUT, outcome.failed(task, job, exc, ttl, message, attempt), "",
                       job.crashes)
    if not alone:
        entry = record.cut_short(job.attempt, dead, None, now, record.ATTEMPT_WORKER_DIED,
                                 f"worker {dead} died holding the job beside others; "
                                 "it runs alone next")
        back = job.after_shared_crash(entry)
        return Verdict(REQUEUE, None, back.encode(), back.crashes, record.requeued(back))
    crashed = job.after_crash()
    if crashed.crashes >= max_crashes:
        failure = record.Failure("WorkerCrashed",
                                 f"worker died while running the job {crashed.crashes} times",
                                 "", record.REASON_CRASHED)
        return Verdict(POISON, outcome.failed_for_good(job, failure, ttl, message, attempt), "",
                       crashed.crashes)
    # The entry says what is known: the worker died holding the job (it may
    # have been running it, or holding it next in its batch).
    entry = record.cut_short(job.attempt, dead, None, now, record.ATTEMPT_WORKER_DIED,
                             f"worker {dead} died holding the job")
    back = job.after_crash(entry)
    return Verdict(REQUEUE, None, back.encode(), back.crashes, record.requeued(back))


def innocent(job: Job, dead: str, culprit: str) -> Verdict:
    """Requeue a job whose worker was killed for another job (`culprit` ran past its
    time limit): not a crash of its own, not a suspect."""
    now = time.time()
    entry = record.cut_short(job.attempt, dead, None, now, record.ATTEMPT_WORKER_DIED,
                             f"worker {dead} was killed: job {culprit} ran past its time "
                             "limit; this job went back to its queue")
    back = job.after_interruption(entry)
    return Verdict(REQUEUE, None, back.encode(), back.crashes, record.requeued(back))
