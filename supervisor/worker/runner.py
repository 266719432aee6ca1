"""Running one job: decode, look up, check arguments, call, and build its outcome.

The runner also holds the state the worker's signal handlers need while a
task runs (is a task running, its deadline), so the soft timeout and the
quick stop can be raised inside the task and nowhere else. Decoding a batch and
checking a job's arguments are intake.py's part; `async def` tasks
coroutines.py's; cancels cancels.py's.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisor.api.context import Request
from supervisor.api.middleware import hooks_for
from supervisor.api.registry import Task, lookup
from supervisor.broker.streams import Delivery, Settlement
from supervisor.config import Config
from supervisor.core import jsonio, outcome, record
from supervisor.core import middleware as hook
from supervisor.core.canvas import chord_input
from supervisor.core.job import Job, peek_id, peek_task
from supervisor.core.record import Attempt, Failure, kept_message
from supervisor.errors import InvalidMessage, JobCancelled, JobTimeout, Retry, UnknownTask
from supervisor.fork.status import ChildStatus
from supervisor.worker.cancels import CancelWatch, StopsOnCancel
from supervisor.worker.coroutines import AsyncFailure, RunsCoroutines
from supervisor.worker.intake import Intake, oversize
from supervisor.worker.metrics import CANCELLED, FAILED, INVALID, RETRY, SUCCEEDED, NullMetrics
from supervisor.worker.progress import ProgressBuffer
from supervisor.worker.slots import Slot, clear_in_thread

if TYPE_CHECKING:
    import asyncio

    from supervisor.worker.aio import EventLoopThread

log = logging.getLogger("supervisor.worker")



class QuickStop(BaseException):
    """Raised inside a running task on SIGQUIT/SIGINT: abandon it, hand it back."""


# RunsCoroutines first: its event_loop() is the one StopsOnCancel only declares.
class Runner(RunsCoroutines, StopsOnCancel, Intake):
    """Runs the jobs of one worker, one at a time."""

    def __init__(self, config: Config, consumer: str, status: ChildStatus,
                 observe: Any = lambda seconds: None, metrics: NullMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or NullMetrics()  # counts locally; flushed by the worker
        self.consumer = consumer
        self.status = status
        self.observe = observe  # told how long each job ran (fetch sizing)
        self.durations: dict[str, float] = {}  # per task, moving average of seconds
        self.in_task = False
        self.deadline = 0.0
        self.timeout_raised = False
        self.current_task = ""
        # Keyed by (queue, entry id): entry ids are unique only within one
        # stream, and two queues' streams written in the same millisecond
        # hand out the same ids.
        self.decoded: dict[tuple[str, str], Job | InvalidMessage] = {}
        self._signatures: dict[str, inspect.Signature] = {}
        self._fitting: set[tuple[str, int, tuple[str, ...]]] = set()
        self.ran = (0.0, 0.0)  # (started, finished) of the last attempt, wall clock
        self.interrupted: tuple[Job, float] | None = None  # (job, started) cut short by QUIT
        self.hooks = hooks_for(config)  # users' middleware (core/middleware.py)
        self.suspects = False  # the last decoded batch holds a suspect (runs alone)
        self._loop: EventLoopThread | None = None
        # Held jobs with a cancel request: id -> the cancel JSON. Filled by mark_taken
        # (take.lua: cancelled before they were taken) and by the watch's polls (the
        # chores thread: asked while held). prepare() drops those not started; a
        # running one gets JobCancelled raised in it (check_cancels).
        # (queue, job id): explicit ids repeat across queues, so a job id alone could
        # stop another queue's job of the same id (the kind of bug issue 11 was).
        self.cancelled: dict[tuple[str, str], str] = {}
        self.watch = CancelWatch(self.cancelled)
        self.progress = ProgressBuffer(config.result_ttl)
        self.cancel_raised: dict[str, float] = {}  # job id -> monotonic when raised
        self.current_id = ""  # the job running at --concurrency 1
        self.current_queue = ""  # ... and its queue
        self.atasks: dict[str, asyncio.Task[Any]] = {}  # async jobs running: id -> task
        # Reads a chord's results for its callback (the worker's broker; set by the loop).
        self.chord_results: Callable[[str, str, int], list[Any]] | None = None

    # --- called from signal handlers (main thread, between bytecodes) --------

    def check_deadline(self) -> None:
        """Raise the soft timeout inside the running task once its deadline passed."""
        if self.in_task and self.deadline and not self.timeout_raised \
                and time.monotonic() >= self.deadline:
            self.timeout_raised = True
            raise JobTimeout("job exceeded its timeout")

    def abandon(self) -> None:
        """Quick stop: leave the running task at once (it is handed back, not failed)."""
        if self.in_task:
            self.in_task = False
            raise QuickStop()

    # --- running -----------------------------------------------------------------

    def process(self, delivery: Delivery) -> Settlement:
        """Run one delivery and return its outcome (not yet written)."""
        ready = self.prepare(delivery)
        if isinstance(ready, Settlement):
            return ready
        task, job = ready
        if not self.hooks.attempts:
            return self.conclude(delivery, task, job, self.execute(task, job), self.ran)
        seen = self.hooks.attempt_begins(job, self.consumer)
        try:
            value = self.execute(task, job)
        except QuickStop:  # the job goes back to its queue; hooks close what they opened
            self.hooks.attempt_ends(seen, hook.INTERRUPTED, None, time.time())
            raise
        return self.conclude(delivery, task, job, value, self.ran, seen)

    def attempt(self, delivery: Delivery, task: Task[Any, Any], job: Job, slot: Slot
                ) -> Settlement:
        """A sync job of a many-slot child with users' hooks, on its pool thread: the
        hooks run around the attempt in the thread that runs it (a tracer's context is
        the thread's), so the outcome is built here too, not on the main thread."""
        seen = self.hooks.attempt_begins(job, self.consumer)
        return self.conclude(delivery, task, job, self.execute(task, job, slot), slot.ran,
                             seen)

    async def aattempt(self, delivery: Delivery, task: Task[Any, Any], job: Job, slot: Slot
                       ) -> Settlement:
        """attempt() for an `async def` job: the hooks run inside the job's own asyncio
        task, whose context is its own."""
        seen = self.hooks.attempt_begins(job, self.consumer)
        value = await self.aexecute(task, job, slot)
        return self.conclude(delivery, task, job, value, slot.ran, seen)

    def prepare(self, delivery: Delivery) -> Settlement | tuple[Task[Any, Any], Job]:
        """Decode, look up and check a delivery: the (task, job) to run, or the outcome
        of a message that cannot run (invalid, unknown task, arguments that do not fit)."""
        job: Job | None = None
        try:
            job = self._decoded(delivery)
            task = lookup(job.task)
        except UnknownTask as exc:
            assert job is not None  # decoded: only the lookup raises UnknownTask
            return self._unknown_task(delivery, job, str(exc))
        except InvalidMessage as exc:
            return self._invalid(delivery, job, str(exc), self.config.result_ttl)
        if (job.queue, job.id) in self.cancelled or job.expires:
            dropped = self._not_started(delivery, task, job)
            if dropped is not None:
                return dropped
        if job.workflow is not None and "in" in job.workflow:
            try:
                job = chord_input(job, self.chord_results)
            except LookupError as exc:
                return self._invalid(delivery, job, f"chord callback without its results: "
                                     f"{exc}", task.result_ttl or self.config.result_ttl)
        problem = self._fits(task, job)
        if problem:
            return self._invalid(delivery, job, problem, task.result_ttl or self.config.result_ttl)
        self.watch.hold(job.id, job.queue)
        return task, job

    def _not_started(self, delivery: Delivery, task: Task[Any, Any], job: Job,
                     ) -> Settlement | None:
        """The outcome of a job cancelled before it started (its record says so already:
        only acknowledged) or expired (its record becomes `cancelled`, reason `expired`);
        None if it is to run."""
        ttl = task.result_ttl or self.config.result_ttl
        if (job.queue, job.id) in self.cancelled:
            del self.cancelled[job.queue, job.id]
            self.watch.drop(job.id, job.queue)
            log.info("job %s (%s) was cancelled before it started: not run", job.id,
                     job.task, extra=_fields(job))
            self.metrics.job(job.task, job.queue, CANCELLED, None)
            return Settlement(delivery, job.id, outcome.dropped(ttl))
        now = time.time()
        if now < job.expires:
            return None
        log.info("job %s (%s) expired before it started: not run", job.id, job.task,
                 extra=_fields(job))
        self.metrics.job(job.task, job.queue, CANCELLED, None)
        return Settlement(delivery, job.id, outcome.Outcome(
            record.cancelled(job, "", now, record.CANCEL_EXPIRED), ttl))

    def conclude(self, delivery: Delivery, task: Task[Any, Any], job: Job, value: Any,
                 ran: tuple[float, float], seen: hook.AttemptInfo | None = None
                 ) -> Settlement:
        """The outcome of a job that ran: `value` is what it returned or raised; `seen`,
        the attempt as the users' hooks saw it begin (they are told how it ended). Its
        last progress report, if any, goes into its record."""
        settled = self._conclude(delivery, task, job, value, ran, seen)
        last = self.progress.take(job.id) if self.progress.latest else None
        written = settled.outcome.record
        if last is not None and written.endswith("}"):
            # Appended as text: the record is a JSON object written a moment ago.
            settled = settled._replace(outcome=settled.outcome._replace(
                record=f'{written[:-1]},"progress":{last}}}'))
        return settled

    def _conclude(self, delivery: Delivery, task: Task[Any, Any], job: Job, value: Any,
                  ran: tuple[float, float], seen: hook.AttemptInfo | None) -> Settlement:
        ttl = task.result_ttl or self.config.result_ttl
        started, finished = ran
        attempt = Attempt(self.consumer, started, finished)
        self.watch.drop(job.id, job.queue)
        asked = self.cancelled.pop((job.queue, job.id), None)
        if self.cancel_raised.pop(job.id, None) is not None and isinstance(value, JobCancelled) \
                and asked is not None:
            if seen:
                self.hooks.attempt_ends(seen, hook.CANCELLED, value, finished)
            return self._stopped(delivery, job, asked, attempt, ttl)
        if isinstance(value, BaseException):
            failed = outcome.failed(task, job, value, ttl, delivery.message, attempt)
            self.metrics.job(job.task, job.queue, RETRY if failed.retry_message else FAILED,
                             finished - started)
            if seen:
                self.hooks.attempt_failed(seen, value, finished, failed.retry_due_ms)
            return Settlement(delivery, job.id, failed)
        bad: Exception | None = None
        try:
            done = outcome.succeeded(task, job, value, ttl, attempt)
        except (TypeError, ValueError) as exc:
            bad = TypeError(f"result of {task.name} is not JSON-serialisable: {exc}")
        else:
            limit = self.config.max_result_bytes
            if len(done.record) > limit // 4 and oversize(done.record, limit):
                bad = ResultTooLarge(
                    f"result of {task.name} takes {len(done.record.encode())} bytes in its "
                    f"record, over max_result_bytes ({limit}); store large results elsewhere "
                    "and return a reference")
        if bad is not None:
            self.metrics.job(job.task, job.queue, FAILED, finished - started)
            log.info("job %s (%s) attempt %d failed: %s", job.id, job.task, job.attempt,
                     describe_failure(bad), extra=_fields(job))
            if seen:
                self.hooks.attempt_failed(seen, bad, finished, 0)
            return Settlement(delivery, job.id, outcome.failed_for_good(
                job, Failure.of(bad), ttl, delivery.message, attempt))
        self.metrics.job(job.task, job.queue, SUCCEEDED, finished - started)
        if seen:
            self.hooks.attempt_ends(seen, hook.SUCCEEDED, None, finished)
        if log.isEnabledFor(logging.DEBUG):  # no per-job cost at INFO
            log.debug("job %s (%s) attempt %d succeeded in %.3fs", job.id, job.task,
                      job.attempt, finished - started,
                      extra=_fields(job, duration=round(finished - started, 6)))
        return Settlement(delivery, job.id, done)

    def _stopped(self, delivery: Delivery, job: Job, asked: str, attempt: Attempt,
                 ttl: int) -> Settlement:
        """The outcome of a running job stopped by its cancel: `cancelled`, never retried."""
        try:
            info = jsonio.loads(asked)
        except ValueError:
            info = {}
        info = info if isinstance(info, dict) else {}
        at = info.get("at")
        by, when = str(info.get("by") or ""), float(at) if isinstance(at, (int, float)) else 0.0
        log.info("job %s (%s) attempt %d was cancelled while it ran%s", job.id, job.task,
                 job.attempt, f" (by {by})" if by else "", extra=_fields(job))
        self.metrics.job(job.task, job.queue, CANCELLED, attempt.finished - attempt.started)
        entry = attempt.entry(job.attempt, record.ATTEMPT_CANCELLED)
        return Settlement(delivery, job.id, outcome.Outcome(
            record.cancelled(job, by, when or attempt.finished, record.CANCEL_REQUESTED, entry),
            ttl))

    def _unknown_task(self, delivery: Delivery, job: Job, problem: str) -> Settlement:
        """Give a job of a task this worker does not know back, for a worker that knows it
        (a rolling deploy, pools with different task sets on one queue); dead-letter it as
        invalid once it has been given back for `unknown_task_wait` seconds."""
        now = time.time()
        ttl = self.config.result_ttl
        # A task of a script run directly (`__main__.name`) is known to no worker.
        window = 0.0 if job.task.startswith("__main__.") else self.config.unknown_task_wait
        passed = outcome.given_back(job, problem, ttl, Attempt(self.consumer, now, now), window)
        if passed is None:
            if job.given_back:
                problem = (f"{problem} (given back {job.given_back} times over "
                           f"{now - job.given_back_at:.0f}s: no worker of queue {job.queue} "
                           "that knows the task took it)")
            return self._invalid(delivery, job, problem, ttl)
        if not job.given_back:  # said once per job; the count is in its record
            log.warning("job %s of queue %s: %s; given back for a worker that knows it "
                        "(for up to %.0fs)", job.id, job.queue, problem, window,
                        extra=_fields(job))
        self.metrics.job(job.task, job.queue, RETRY, None)
        return Settlement(delivery, job.id, passed)

    def _invalid(self, delivery: Delivery, job: Job | None, problem: str, ttl: int) -> Settlement:
        """Dead-letter a message that cannot run (undecodable, unknown task, bad arguments)."""
        job_id = job.id if job else (peek_id(delivery.message)
                                     or f"invalid-{delivery.queue}-{delivery.entry_id}")
        task_name = job.task if job else peek_task(delivery.message)
        log.error("dead-lettering message %s (job %s) of queue %s: %s", delivery.entry_id,
                  job_id, delivery.queue, problem, extra=_fields(job) if job else None)
        self.metrics.job(task_name, delivery.queue, INVALID, None)
        kept = kept_message(delivery.message, self.config.max_payload_bytes)
        return Settlement(delivery, job_id, outcome.invalid(
            job_id, delivery.queue, task_name, problem, kept, ttl, job))

    def execute(self, task: Task[Any, Any], job: Job, slot: Slot | None = None) -> Any:
        """Run the task; return its value, or the exception it raised.

        Without a slot (--concurrency 1) on the main thread, the runner keeping
        the job's state; sets `self.ran` to the attempt's (started, finished)
        wall-clock times. With one (a pool thread of a many-slot child), the
        slot keeps it. An `async def` task runs on the child's event loop
        while this thread waits for it.
        """
        state: Runner | Slot = self if slot is None else slot
        request = Request(job.id, job.task, job.queue, job.attempt, job.args, job.kwargs,
                          job.headers)
        timeout = task.timeout
        if slot is None:
            self.status.job_begins(job.id, job.task, timeout)
        else:
            self.status.slot_begins(slot.index, job.id, job.task, timeout)
        state.current_task = job.task
        state.timeout_raised = False
        if slot is None:
            self.current_id, self.current_queue = job.id, job.queue
        # Deadlines on the monotonic clock (immune to clock steps); the
        # attempt's times on the wall clock (they are shown to people). An
        # async task's soft timeout is kept by the loop (its task is cancelled).
        state.deadline = time.monotonic() + timeout if timeout and not task.is_async else 0.0
        started = time.time()
        state.ran = (started, 0.0)  # running: a quick stop records when it began
        failed = True
        try:
            state.in_task = True
            try:
                if (job.queue, job.id) in self.cancelled:  # asked once taken, before it began
                    self.cancel_raised[job.id] = time.monotonic()
                    raise JobCancelled(job.id)
                value = task.run_job(request)
                if task.is_async:
                    value = self.event_loop().submit(self._awaited(value, task, job)).result()
            finally:
                if slot is None:
                    self.in_task = False
                else:
                    self._leave_task(slot)
            if isinstance(value, AsyncFailure):
                return self._failed(task, job, value.exc, started, value.timed_out)
            failed = False
            return value
        except QuickStop:
            self.interrupted = (job, started)  # handed back with how the attempt ended
            raise
        except BaseException as exc:  # noqa: BLE001 - every task error is an outcome
            # SystemExit, KeyboardInterrupt and the like raised by the task are
            # its outcome too: a failed attempt under its retry policy, never
            # an exit of the worker (which would re-run the job forever).
            return self._failed(task, job, exc, started, state.timeout_raised)
        finally:
            state.deadline = 0.0
            state.ran = self._ended(job, started, failed, slot)

    def _leave_task(self, slot: Slot) -> None:
        # Under the slot's lock: once in_task is False the soft timeout (or a cancel)
        # is never raised in this thread, and one raised just before is dropped if it
        # has not landed (it would land in the worker's own code otherwise).
        with slot.lock:
            slot.in_task = False
            if slot.timeout_raised or (slot.job is not None
                                       and slot.job.id in self.cancel_raised):
                clear_in_thread(slot.thread_id)

    def _failed(self, task: Task[Any, Any], job: Job, exc: BaseException, started: float,
                timed_out: bool) -> BaseException:
        if timed_out and (not isinstance(exc, JobTimeout) or not exc.args):
            exc = JobTimeout(f"job exceeded its timeout of {task.timeout}s")
        took = time.time() - started
        log.info("job %s (%s) attempt %d failed after %.3fs: %s", job.id, job.task,
                 job.attempt, took, describe_failure(exc),
                 extra=_fields(job, duration=round(took, 6)))
        return exc

    def _ended(self, job: Job, started: float, failed: bool,
               slot: Slot | None) -> tuple[float, float]:
        finished = time.time()
        took = max(0.0, finished - started)  # a clock step must not make it negative
        self.observe(took)
        known = self.durations.get(job.task)
        self.durations[job.task] = took if known is None else 0.7 * known + 0.3 * took
        if slot is None:
            self.status.job_ends(failed, publish=False)  # the worker publishes per batch
        else:
            self.status.slot_ends(slot.index, failed)
        return started, finished


class ResultTooLarge(Exception):
    """A task returned more than max_result_bytes: the job fails (retrying would not help)."""


def describe_failure(exc: BaseException) -> str:
    """`Type: message` of what a task raised; for a Retry, of its cause and the delay asked."""
    if isinstance(exc, Retry):
        when = f" in {exc.delay:g}s" if exc.delay is not None else ""
        if exc.exc is not None:
            return f"{type(exc.exc).__name__}: {exc.exc} (retry requested{when})"
        return f"retry requested{when}"
    return f"{type(exc).__name__}: {exc}"


def _fields(job: Job, **more: Any) -> dict[str, Any]:
    """The `extra=` of a job's log lines (JSON logs carry them as fields; see logs.py)."""
    return {"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt,
            **more}
