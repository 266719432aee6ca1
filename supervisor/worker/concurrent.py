"""Many jobs in flight per child (--concurrency K > 1).

The main thread keeps every Redis conversation of the worker (fetch,
settle, hand back, housekeeping) and the bookkeeping; the jobs themselves
run elsewhere: a sync task on one of K pool threads, an `async def` task as
a task of the child's one event loop (aio.py). Each job holds one of K
slots from its fetch until its outcome is written, so the child never holds
more than K jobs running; beyond them it holds a few fetched jobs ready to
start (as many as wait no longer than ~100 ms in all, none for slow jobs),
so an idle worker on another node never waits behind jobs this one merely
holds.

Per job, the guarantees of one-at-a-time hold: the outcome is built
(runner.conclude, on the main thread: metrics and logs stay exact) and
written with the acknowledgement in one settle step; the soft timeout is
raised in that job's thread or cancels that job's task (slots.py); the
status block has one record per slot, so the master sees every job and its
deadline.

Stopping: TERM (and a recycle) fetches nothing more and lets every job in
flight finish (the master's --graceful-timeout bounds it); QUIT hands every
unsettled job back at once. A suspect -- a job whose worker died while it
ran beside others -- runs alone: no other job is in flight, none is held,
so that if it kills this child too it is the one blamed (core/orphan.py).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import types
from collections import deque
from typing import TYPE_CHECKING, Any

from supervisor.api.registry import Task
from supervisor.broker.streams import Delivery, Requeue, Settlement
from supervisor.config import Config
from supervisor.core.job import Job, peek_id
from supervisor.errors import JobCancelled, JobTimeout
from supervisor.worker.loop import BLOCK_MS, Worker
from supervisor.worker.runner import Runner
from supervisor.worker.sizing import HOLD_TARGET
from supervisor.worker.slots import Slot, raise_in_thread

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("supervisor.worker")

FULL_WAIT = 0.25  # seconds to wait for a job to end when no slot is free (stop latency)
SETTLE_WITHIN = 0.002  # seconds an ended job may wait for others to share its settle
IDLE_WAIT = 0.005  # ... when some are free but the queue had nothing (polls ~200/s at most)

SWITCH_INTERVAL = 0.001  # seconds (CPython's default: 0.005)

Key = tuple[str, str]  # (queue, entry id): entry ids repeat across streams


class ConcurrentWorker(Worker):
    """A worker running up to `config.concurrency` jobs at once."""

    def __init__(self, config: Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if not isinstance(self.runner, Runner):
            raise TypeError("a concurrent worker needs the real runner")
        self.real_runner: Runner = self.runner
        self.capacity = config.concurrency
        self.slots = [Slot(index) for index in range(self.capacity)]
        self.free = list(reversed(self.slots))  # pop() hands out slot 0 first
        self.in_hand: dict[Key, Delivery] = {}  # fetched, not yet settled
        self.running = 0  # slots in use
        self.inbox: queue.SimpleQueue[Slot | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        # Fetched and prepared, waiting for a slot (see buffer()).
        self.waiting: deque[tuple[Delivery, Task[Any, Any], Job]] = deque()
        self.waiting_alone: tuple[Delivery, Task[Any, Any], Job] | None = None
        self.async_started: list[Slot] = []  # launched this turn, for the loop
        self.unsettled: list[Settlement] = []  # ended, outcome built, not yet written
        self.settle_by = 0.0  # monotonic: when they are written at the latest
        self.alone: Slot | None = None  # the suspect running alone

    # --- signals -------------------------------------------------------------------

    def _on_quit(self, signum: int, frame: types.FrameType | None) -> None:
        # Nothing is raised on the main thread (it runs no task, only the loop, which
        # sees the flag within FULL_WAIT): every unsettled job is handed back.
        self.stopping = self.quick = True

    def _on_alarm(self, signum: int, frame: types.FrameType | None) -> None:
        self.status.beat()
        self._show_title()
        self.check_deadlines()
        self.check_cancels()

    def _show_title(self) -> None:
        busy = self.running
        wanted = ("busy", f"{busy}/{self.capacity}") if busy else ("idle", f"0/{self.capacity}")
        if wanted != self._title_shown:
            self._title_shown = wanted
            self.title(*wanted)

    def check_deadlines(self) -> None:
        """Raise the soft timeout in the thread of each sync job past its deadline (from
        the SIGALRM handler, main thread: never waits for a slot's lock)."""
        now = time.monotonic()
        for slot in self.slots:
            if not (slot.in_task and slot.deadline and not slot.timeout_raised
                    and now >= slot.deadline):
                continue
            if not slot.lock.acquire(blocking=False):
                continue  # the job is leaving its task right now: next tick
            try:
                if slot.in_task and not slot.timeout_raised:
                    slot.timeout_raised = True
                    raise_in_thread(slot.thread_id, JobTimeout)
            finally:
                slot.lock.release()

    def check_cancels(self) -> None:
        """Raise JobCancelled in each running job asked to be cancelled (a sync job's
        thread; an async job's task is cancelled on the loop); past the grace, kill this
        child (SIGALRM handler, main thread)."""
        runner = self.real_runner
        if not runner.cancelled:
            return
        for slot in self.slots:
            job = slot.job
            if job is None or (job.queue, job.id) not in runner.cancelled \
                    or slot.ran[0] == 0.0:
                continue  # not begun yet: execute() sees the cancel when it begins
            if job.id in runner.atasks:
                runner.cancel_async(job.id)
                continue
            raised = runner.cancel_raised.get(job.id)
            if raised is not None:
                if slot.in_task:
                    runner.past_grace(job.id, raised)
                continue
            if not slot.lock.acquire(blocking=False):
                continue  # the job is leaving its task right now: next tick
            try:
                if slot.in_task:
                    runner.cancel_raised[job.id] = time.monotonic()
                    raise_in_thread(slot.thread_id, JobCancelled)
            finally:
                slot.lock.release()

    # --- the loop ------------------------------------------------------------------

    def serve(self) -> None:
        # The main thread, the pool threads and the loop hand the GIL to each other
        # at every job's start and end: a shorter switch interval than the default
        # 5 ms keeps a thread that woke (a job ended, a job to start) from waiting
        # for one that computes.
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            while not self.stopping:
                self.step()
            if not self.quick:  # TERM or a recycle: every job in flight finishes
                while self.running and not self.quick:
                    self.collect(FULL_WAIT)
            self.collect(0.0)  # what ended meanwhile is settled, not re-run
            self.flush()
        finally:
            # Handed back on the way out (Worker.run): every job not settled, the
            # ones still running included after a quick stop.
            self.held = list(self.in_hand.values())

    def step(self) -> None:
        """One turn: settle what ended, start what waits, fetch when the buffer runs low."""
        self.collect(0.0)
        if self.waiting_alone is not None or self.alone is not None:
            self.step_alone()
        else:
            want = self.room()
            if want and len(self.waiting) <= self.buffer() // 2:
                idle = not self.running and not self.waiting
                if idle:
                    self.flush()  # nothing will end during the blocking read
                batch = self.fetch(BLOCK_MS if idle else None)
                if batch:
                    self.start(batch)
                elif self.running:
                    self.collect(IDLE_WAIT)
            else:
                self.collect(FULL_WAIT)
        self.housekeeping(self.clock.monotonic())

    def buffer(self) -> int:
        """Jobs held beyond the slots, ready to start the moment a slot frees (no fetch
        round trip in between): as many as wait no longer than HOLD_TARGET in all, at
        most K. None while durations are unknown, or for jobs slower than HOLD_TARGET,
        so an idle worker elsewhere never waits behind jobs this one merely holds."""
        average = max(self.sizer.average, 1e-4)
        return min(self.capacity, max(0, int(self.capacity * HOLD_TARGET / average)
                                      - self.capacity))

    def room(self) -> int:
        """Jobs to fetch now: free slots and buffer, no more than this child has left."""
        room = len(self.free) + self.buffer() - len(self.waiting)
        if self.job_limit:
            room = min(room, self.job_limit - self.jobs_done - len(self.in_hand))
        return max(0, room)

    def fetch_count(self) -> int:
        return max(1, self.room())

    def read(self, count: int, block_ms: int | None, own: bool) -> list[Delivery]:
        if not own or not self.in_hand:
            return super().read(count, block_ms, own)
        # Our own pending entries include the jobs running here: those not in hand are
        # read without delivering again what runs (its idle time tells a job past its
        # time limit when this child is killed).
        found = self.broker.own_pending(self.consumer, self.queues, set(self.in_hand), count)
        self.check_own_pending = len(found) >= count
        return found

    def step_alone(self) -> None:
        if self.waiting:  # nothing else may be held while a suspect runs
            back = [delivery for delivery, _, _ in self.waiting]
            self.waiting.clear()
            for delivery in back:
                del self.in_hand[delivery.queue, delivery.entry_id]
            self.hand_back(back)
        if self.alone is None and self.waiting_alone is not None and not self.running:
            delivery, task, job = self.waiting_alone
            self.waiting_alone = None
            log.info("job %s (%s): its worker died while it ran beside others; it runs "
                     "alone", job.id, job.task)
            self.waiting.appendleft((delivery, task, job))
            self.alone = self.free[-1]  # the slot dispatch() gives it
            self.dispatch()
        else:
            self.collect(FULL_WAIT)

    def start(self, batch: list[Delivery]) -> None:
        """Start each fetched job in a free slot (a suspect waits to run alone)."""
        immediate: list[Settlement] = []
        back: list[Delivery] = []
        for delivery in batch:
            ready = self.real_runner.prepare(delivery)
            if isinstance(ready, Settlement):  # cannot run: dead-lettered or given back
                self.in_hand[delivery.queue, delivery.entry_id] = delivery
                immediate.append(ready)
                continue
            task, job = ready
            if job.suspect:
                if self.waiting_alone is None:
                    self.waiting_alone = (delivery, task, job)
                    self.in_hand[delivery.queue, delivery.entry_id] = delivery
                else:
                    back.append(delivery)  # one suspect at a time: the others go back
            elif len(self.waiting) < len(self.free) + self.buffer():
                self.in_hand[delivery.queue, delivery.entry_id] = delivery
                self.waiting.append((delivery, task, job))
            else:  # more than asked for (own pending entries of several queues)
                back.append(delivery)
        self.dispatch()
        if back:
            self.hand_back(back)
        if immediate:
            self.finish(immediate)

    def dispatch(self) -> None:
        """Start waiting jobs in the free slots (none once stopping: they go back)."""
        if not (self.free and self.waiting and not self.stopping):
            return
        started: list[Slot] = []
        while self.free and self.waiting:
            started.append(self.launch(*self.waiting.popleft()))
        if self.async_started:  # handed to the loop together: one wake-up of its thread
            runner, batch = self.real_runner, self.async_started
            self.async_started = []
            if runner.hooks.attempts:
                coros = [(runner.aattempt(_given(slot), slot.task, slot.job, slot), slot)
                         for slot in batch]
            else:
                coros = [(runner.aexecute(slot.task, slot.job, slot), slot) for slot in batch]
            runner.event_loop().start_all(coros, self._async_ended)

    def launch(self, delivery: Delivery, task: Task[Any, Any], job: Job) -> Slot:
        """Give a job a slot; a sync job starts on a pool thread at once, an async one
        with the others of this turn (dispatch)."""
        slot = self.free.pop()
        slot.delivery, slot.task, slot.job, slot.value = delivery, task, job, None
        slot.settled = None
        slot.ran = (0.0, 0.0)  # not begun yet
        self.in_hand[delivery.queue, delivery.entry_id] = delivery
        self.running += 1
        if task.is_async:
            self.async_started.append(slot)
        else:
            if not self.threads:
                self._start_threads()
            self.inbox.put(slot)
        return slot

    def _async_ended(self, slot: Slot, ended: asyncio.Task[Any]) -> None:
        # On the loop's thread, as the job's task ends.
        try:
            value = ended.result()
        except BaseException as exc:  # noqa: BLE001 - the loop went away under it
            slot.value = exc
        else:
            if isinstance(value, Settlement):  # aattempt: built with the hooks, in the task
                slot.settled = value
            else:
                slot.value = value
        self.done.put(slot)

    def _start_threads(self) -> None:
        for number in range(self.capacity):
            thread = threading.Thread(target=self._thread_main, daemon=True,
                                      name=f"supervisor-job-{number}")
            thread.start()
            self.threads.append(thread)

    def _thread_main(self) -> None:
        """A pool thread: run the sync jobs it is given, one at a time."""
        while True:
            slot = self.inbox.get()
            if slot is None:
                return
            slot.thread_id = threading.get_ident()
            runner = self.real_runner
            try:
                if runner.hooks.attempts:
                    slot.settled = runner.attempt(_given(slot), slot.task, slot.job, slot)
                else:
                    slot.value = runner.execute(slot.task, slot.job, slot)
            except BaseException as exc:  # noqa: BLE001
                # A soft timeout that landed just outside the task: still this
                # job's outcome, never a lost job.
                slot.value = exc
            self.done.put(slot)

    def collect(self, wait: float) -> None:
        """Take the jobs that ended (waiting up to `wait` seconds for one), start the next
        ones in their slots, and settle: at once when many ended, else within SETTLE_WITHIN
        of the first, so jobs ending one by one share a settle round trip."""
        if self.unsettled:
            wait = min(wait, max(0.0, self.settle_by - time.monotonic()))
        try:
            slot = self.done.get(timeout=wait) if wait > 0 else self.done.get_nowait()
        except queue.Empty:
            if self.unsettled and time.monotonic() >= self.settle_by:
                self.flush()
            return
        ended = [slot]
        while True:
            try:
                ended.append(self.done.get_nowait())
            except queue.Empty:
                break
        results = [(s.delivery, s.task, s.job, s.value, s.ran, s.settled) for s in ended]
        alone_ended = self.alone is not None and any(s is self.alone for s in ended)
        for slot in ended:
            slot.delivery = slot.task = slot.job = slot.value = slot.settled = None
            self.free.append(slot)
        self.running -= len(ended)
        self.dispatch()  # the next jobs start before this settle's round trip
        conclude = self.real_runner.conclude
        if not self.unsettled:
            self.settle_by = time.monotonic() + SETTLE_WITHIN
        self.unsettled.extend(result[5] or conclude(*result[:5])  # type: ignore[arg-type]
                              for result in results)
        if alone_ended or self.stopping or len(self.unsettled) * 2 >= self.capacity \
                or time.monotonic() >= self.settle_by:
            try:
                self.flush()
            finally:
                if alone_ended:  # only once its outcome is written: then others may run
                    self.alone = None

    def flush(self) -> None:
        """Settle every job that ended and is not settled yet."""
        finished, self.unsettled = self.unsettled, []
        if finished:
            self.finish(finished)

    def requeue_items(self, held: list[Delivery]) -> list[Requeue]:
        """After a quick stop, the jobs cut short while running keep that attempt in their
        record (as at K = 1); the others go back as they came."""
        running = {(s.delivery.queue, s.delivery.entry_id): s for s in self.slots
                   if s.delivery is not None and s.ran[0] > 0.0 and s.ran[1] == 0.0}
        items: list[Requeue] = []
        for delivery in held:
            slot = running.get((delivery.queue, delivery.entry_id))
            if slot is not None and self.quick:
                items.append(self.interrupted_item(delivery, slot.job, slot.ran[0]))
            else:
                items.append((delivery, delivery.message, peek_id(delivery.message) or ""))
        return items

    def finish(self, finished: list[Settlement]) -> None:
        """Write the outcomes and acknowledge; only then are the jobs out of hand."""
        self.settle(finished)
        for item in finished:
            self.in_hand.pop((item.delivery.queue, item.delivery.entry_id), None)
        self.count_rates(finished)
        self.jobs_done += len(finished)
        if self.job_limit:
            self.count_job()


def make_worker(config: Config, **kwargs: Any) -> Worker:
    """The worker for `config`: one job at a time at --concurrency 1, K at once above."""
    if config.concurrency > 1:
        return ConcurrentWorker(config, **kwargs)
    return Worker(config, **kwargs)


def _given(slot: Slot) -> Delivery:
    """The delivery of a slot that was given a job (launch() sets it before the job runs)."""
    assert slot.delivery is not None
    return slot.delivery
