"""The worker loop: fetch in batches, run tasks, settle each job, recover dead peers.

The same loop runs in the foreground (`supervisor worker`) and in each child
of the master (child.py). Acknowledgement happens only after the job's
outcome is written, in one script (settle.lua), so a crash anywhere re-runs
the job instead of losing it. Running one job is runner.py's part; writing
outcomes and handing jobs back outcomes.py's; the chores between batches
housekeeping.py's; finding dead consumers recovery.py's; the node heartbeat
chores.py's.

What a test must replace is a keyword-only parameter with a real default:
the broker, the runner, the clock, the node chores, the scheduler and the
random source. The loop's decisions (may_start_another,
release_behind_slow_job, the own-pending reads in fetch, fetch sizing, the
recycle) are then driven with fakes and a fake clock (tests/unit).
"""

from __future__ import annotations

import logging
import random
import signal
import types
from collections import Counter
from typing import Any

import redis

from supervisor.api.context import set_progress_sink
from supervisor.broker.connection import TRANSIENT_ERRORS, connect
from supervisor.broker.reconnect import OutageLog, call_with_reconnect
from supervisor.broker.refusals import write_refusal
from supervisor.broker.streams import Broker, Delivery, Settlement
from supervisor.config import Config
from supervisor.core.queue_order import QueueOrder
from supervisor.errors import CHILD_EXIT_RECYCLE
from supervisor.fork.context import ChildContext
from supervisor.fork.status import ChildStatus
from supervisor.logs import reopen_log_files
from supervisor.worker import metrics
from supervisor.worker.boot import banner
from supervisor.worker.chores import NodeChores
from supervisor.worker.housekeeping import Housekeeping
from supervisor.worker.limits import LimitScreen
from supervisor.worker.outcomes import Outcomes
from supervisor.worker.recovery import Recovery, consumer_for_process
from supervisor.worker.runner import QuickStop, Runner
from supervisor.worker.scheduler import Scheduler, make_scheduler
from supervisor.worker.seams import Chores, Clock, JobRunner, SystemClock, Title, WorkerBroker
from supervisor.worker.sizing import HOLD_TARGET, FetchSizer, job_share

log = logging.getLogger("supervisor.worker")

BLOCK_MS = 250  # longest wait in XREADGROUP: bounds stop latency and housekeeping delay
BEAT_EVERY = 0.5  # SIGALRM period: heartbeat and soft-timeout check


class Worker(Housekeeping, Outcomes):
    """One consumer. `run()` returns the process exit code.

    `context` is what a master handed its child (None in `supervisor
    worker`): the status block the master watches, the node-state buffer,
    the metrics directory. Only a child recycles after its share of
    --max-jobs-per-child: a foreground worker has nobody to replace it.
    Without a `broker` the worker connects and runs the scheduler on that
    connection; with one (a test's), the scheduler is what it is given.
    """

    def __init__(self, config: Config, *, context: ChildContext | None = None,
                 title: Title | None = None, broker: WorkerBroker | None = None,
                 runner: JobRunner | None = None, clock: Clock | None = None,
                 chores: Chores | None = None, scheduler: Scheduler | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.status = context.status if context else ChildStatus(slots=config.concurrency)
        self.title = title or (lambda state, task="": None)
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.queues = list(config.queues)
        # Which queues each fetch reads in which amounts: strict order, or weighted.
        self.order = QueueOrder(self.queues, config.queue_weights)
        self.paused: set[str] = set()  # of our queues, the paused ones (read_controls)
        self.next_control = 0.0
        self.consumer = str(consumer_for_process(config.node_name))
        self.metrics = metrics.for_worker(context.metrics_dir if context else None)
        self.outage: OutageLog = metrics.CountedOutageLog(
            f"worker {self.consumer}", self.metrics.reconnected, explain=self._refusal)
        self.marks_refused = False  # the running hash's writes are refused for now
        self.sizer = FetchSizer(config.prefetch)
        if broker is None:  # the real one; a scheduler on it unless one was given
            real = Broker.for_config(connect(config.redis_url), config)
            broker = real
            scheduler = scheduler or make_scheduler(config, real.client, real)
        self.broker: WorkerBroker = broker
        self.scheduler = scheduler
        self.runner: JobRunner = runner or Runner(config, self.consumer, self.status,
                                                  self.sizer.observe, metrics=self.metrics)
        self.chores: Chores = chores or NodeChores(
            config, self.consumer, context.node_state if context else None, self.metrics)
        if isinstance(self.chores, NodeChores) and isinstance(self.runner, Runner):
            self.chores.watch = self.runner.watch  # polls the held jobs' cancel requests
            self.chores.progress = self.runner.progress  # writes their progress
            set_progress_sink(self.runner.progress.report)
        if isinstance(self.runner, Runner):
            self.runner.chord_results = self.broker.chord_results  # a chord callback's input
        self.recovery = Recovery(config, self.consumer, self.broker, self.metrics,
                                 self.runner.process)
        self.rates = metrics.RateCounter(self.broker.add_done)  # for `status` jobs/s
        self.limits = LimitScreen(self.consumer, self.metrics, self.clock.time)
        self.job_limit = job_share(config.max_jobs_per_child, self.rng.random()) \
            if context else 0
        self.jobs_done = 0
        self.stopping = self.recycling = self.quick = self.reopen_logs = False
        self.stop_asked = 0.0
        self.check_own_pending = False
        self.held: list[Delivery] = []
        self.fetched_at = 0.0
        self.next_promote = self.next_sweep = self.next_schedule = 0.0
        self.next_metrics_flush = 0.0
        self._title_shown = ("idle", "")

    # --- signals (handlers only set flags, or raise inside a running task) ---

    def install_signals(self) -> None:
        # Signals meant for the master can reach a child too (sent to the
        # process group by a closed terminal or `systemctl kill`): ignore them.
        for ignored in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(ignored, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, BEAT_EVERY, BEAT_EVERY)

    def _on_usr1(self, signum: int, frame: types.FrameType | None) -> None:
        self.reopen_logs = True  # done by the loop: no I/O inside a handler

    def _on_term(self, signum: int, frame: types.FrameType | None) -> None:
        if not self.stopping:
            self.stop_asked = self.clock.monotonic()
        self.stopping = True

    def _on_quit(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = self.quick = True
        self.runner.abandon()

    def _on_alarm(self, signum: int, frame: types.FrameType | None) -> None:
        # Runs on the main thread between bytecodes: a task stuck in C code
        # with signals blocked stops the heartbeat, which is what the master
        # watches for; a long Python computation or sleep keeps beating.
        self.status.beat()
        self._show_title()
        self.runner.check_deadline()
        self.runner.check_cancel()

    def _show_title(self) -> None:
        # Updated from the heartbeat tick, not per job: at thousands of jobs
        # a second a title per job is pure overhead, and a job that lasts
        # long enough to be seen in `ps` is shown within half a second.
        wanted = ("busy", self.runner.current_task) if self.runner.in_task else ("idle", "")
        if wanted != self._title_shown:
            self._title_shown = wanted
            self.title(*wanted)

    # --- the loop ----------------------------------------------------------

    def _redis(self, call: Any) -> Any:
        """Run an idempotent Redis call, riding out outages until told to stop quickly.

        A Redis that refuses writes for now (out of memory, a failed snapshot,
        too few replicas) is an outage too: the outcomes stay in hand and are
        written once it takes writes again, never counted against the job.
        """
        return call_with_reconnect(call, TRANSIENT_ERRORS, self.outage,
                                   should_stop=lambda: self.quick,
                                   also=lambda exc: self._refusal(exc) is not None)

    def _refusal(self, exc: BaseException) -> str | None:
        """The sentence for a write Redis refuses for now, None for any other error."""
        refused = write_refusal(exc, self.config.redis_url, "outcomes are kept until it "
                                "takes writes again")
        return None if refused is None else str(refused)

    def _waits_out(self, exc: BaseException) -> bool:
        """An error the loop rides out (an outage, a refused write) instead of dying of."""
        return isinstance(exc, TRANSIENT_ERRORS) or self._refusal(exc) is not None

    def run(self) -> int:
        self._redis(lambda: self.broker.ensure_groups(self.queues))
        # Beat once before the first fetch: other nodes must never see one of
        # our consumers without our heartbeat, or they would reclaim its jobs.
        self._redis(self.chores.beat)
        self.chores.start()
        for line in banner(self.config, self.consumer):
            log.info("%s", line)
        try:
            self.serve()
        except QuickStop:
            pass
        finally:
            self.status.mark_stopping()
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            self.hand_back(self.held)
            self.chores.stop()
            self.flush_counts()
        log.info("worker %s stopped", self.consumer)
        return CHILD_EXIT_RECYCLE if self.recycling else 0

    def serve(self) -> None:
        """Consume until stopped: one job at a time (concurrent.py runs K at once)."""
        # Fetch first, then housekeeping: a booting worker starts on jobs
        # without waiting for the sweep and promotion round trips.
        while not self.stopping:
            self.work_through(self.fetch())
            self.housekeeping(self.clock.monotonic())

    def work_through(self, batch: list[Delivery]) -> None:
        """Run a fetched batch; settle what finished in one step, leave the rest held.

        Outcomes are written and acknowledged together after the batch (a
        batch is at most ~100 ms of work), so a crash re-runs the unsettled
        jobs rather than losing them. A stop leaves unstarted jobs in
        `self.held`, handed back on the way out.
        """
        if self.reopen_logs:  # USR1 arrived (likely while blocked in the fetch)
            self.reopen_logs = False
            reopen_log_files()
        self.held = batch
        self.fetched_at = self.clock.monotonic()
        finished: list[Settlement] = []
        process = self.runner.process
        try:
            while self.held and (not self.stopping or self.may_start_another()):
                if self.runner.suspects and self.runner.is_suspect(self.held[0]):
                    self.run_alone(finished)
                elif len(self.held) > 1:
                    self.release_behind_slow_job()
                finished.append(process(self.held[0]))
                self.held.pop(0)  # only once its outcome exists: a quick stop hands it back
                self.jobs_done += 1
                if self.job_limit:
                    self.count_job()
        finally:
            self.status.publish()  # the last job's end (runner defers it within a batch)
            if finished:
                self.settle(finished)
                self.count_rates(finished)

    def count_rates(self, finished: list[Settlement]) -> None:
        if len(self.queues) == 1:  # the usual case: no per-job work
            self.rates.add(self.queues[0], len(finished))
            return
        for item in finished:
            self.rates.add(item.delivery.queue)

    def run_alone(self, finished: list[Settlement]) -> None:
        """Before a suspect (its worker died while it ran beside others), make it the only
        job this worker holds: settle what finished, give back what waits behind it.
        Should it kill this worker too, it is then the one blamed (core/orphan.py)."""
        if finished:
            self.settle(finished)
            self.count_rates(finished)
            finished.clear()
        if len(self.held) > 1:
            behind, self.held = self.held[1:], self.held[:1]
            self.hand_back(behind)

    def release_behind_slow_job(self) -> None:
        """Before a job known to be slow, give back the jobs held behind it.

        A batch is sized from recent durations; a slow task in a batch of
        fast ones would make the rest wait, while an idle worker elsewhere
        could run them now. The same once a batch has taken twice the time
        it was sized for (its jobs were slower than the recent ones).
        """
        overdue = self.clock.monotonic() - self.fetched_at > 2 * HOLD_TARGET  # estimate wrong
        if overdue or self.runner.expected_seconds(self.held[0]) > HOLD_TARGET:
            behind, self.held = self.held[1:], self.held[:1]
            self.hand_back(behind)

    def may_start_another(self) -> bool:
        """Whether to start the next job in hand.

        After TERM, jobs already taken (readers see them as started) still
        start during HOLD_TARGET, the ~100 ms of work a batch holds, so the
        job a worker was about to begin is finished rather than bounced;
        the rest go back to the queue. A quick stop starts nothing.
        """
        if not self.stopping:
            return True
        if self.quick or self.recycling:
            return False
        return self.clock.monotonic() - self.stop_asked < HOLD_TARGET

    def count_job(self) -> None:
        """Recycle after this child's share of --max-jobs-per-child (drawn with jitter)."""
        if self.jobs_done >= self.job_limit and not self.stopping:
            log.info("worker %s ran %d jobs: recycling", self.consumer, self.jobs_done)
            self.stopping = self.recycling = True

    def fetch_count(self) -> int:
        count = self.sizer.count
        if self.job_limit:  # never take jobs this child will not run
            count = max(1, min(count, self.job_limit - self.jobs_done))
        return count

    def fetch(self, block_ms: int | None = BLOCK_MS) -> list[Delivery]:
        try:
            own = self.check_own_pending
            count = self.fetch_count()
            until_due = 0
            if block_ms and self.limits.next_due_ms:
                # A turn it handed out comes before the read's end: Redis times a blocked
                # read out only at its next cron tick (up to 100 ms late), so read without
                # blocking and sleep here until the turn instead.
                until_due = self.limits.next_due_ms - self._now_ms()
                if until_due < block_ms:
                    block_ms = None
            deliveries = self.read(count, block_ms, own)
            if not deliveries and until_due > 0 and block_ms is None:
                self._pause(until_due / 1000)
            if deliveries:
                # Jobs over their limits go to wait in Redis here, before any is taken.
                fetched = len(deliveries)
                deliveries = self.limits.screen(self.broker, deliveries)
                self.sizer.sent_to_wait(fetched - len(deliveries))
            if deliveries:
                self.mark_taken(deliveries)
            # A read says Redis answers, not that it takes writes again: an outage
            # of refused writes ends with the next write that succeeds.
            cause = self.outage.cause
            if self.outage.since is not None and (cause is None or self._refusal(cause) is None):
                self.outage.recovered()
            return deliveries
        except Exception as exc:
            if not self._waits_out(exc):
                raise
            # A reply lost mid-read may have delivered entries we never saw:
            # read our own pending entries first once Redis answers again.
            self.check_own_pending = True
            self.outage.failed(exc)
            self._pause(min(2.0, self.rng.uniform(0.05, 0.5)))
            return []

    def read(self, count: int, block_ms: int | None, own: bool) -> list[Delivery]:
        """Up to `count` new entries, or with `own` our own pending ones (between batches
        nothing runs here, so every one of them is lost to us and to be run)."""
        queues = self.queues if own else self.unpaused()
        if not queues:  # every queue paused: wait as a blocking read would
            if block_ms:
                self._pause(block_ms / 1000)
            return []
        plan = None if own else self.order.plan(count, queues)
        deliveries = self.broker.fetch(self.consumer, queues, count, block_ms,
                                       own_pending=own, plan=plan)
        if plan is not None and self.order.weighted:
            self.order.took(plan, Counter(delivery.queue for delivery in deliveries))
        # Our own pending entries are read a batch at a time until none are left.
        self.check_own_pending = own and len(deliveries) >= count
        return deliveries

    def unpaused(self) -> list[str]:
        """Our queues that are not paused (as last read by housekeeping)."""
        if not self.paused:
            return self.queues
        return [queue for queue in self.queues if queue not in self.paused]

    def mark_taken(self, deliveries: list[Delivery]) -> None:
        taken = self.runner.decode_batch(deliveries, self.broker.cancels_seen)
        if not taken:
            return
        try:
            self.runner.cancelled.update(self.broker.mark_taken(taken))
        except redis.exceptions.ResponseError as exc:
            # The running hash only tells readers a job started: when Redis refuses
            # the write, the jobs run all the same (shown as queued until settled).
            refused = self._refusal(exc)
            if refused is None:
                raise
            if not self.marks_refused:
                log.warning("worker %s: %s; jobs run unmarked meanwhile", self.consumer, refused)
            self.marks_refused = True
            return
        self.marks_refused = False

    def _pause(self, seconds: float) -> None:
        deadline = self.clock.monotonic() + seconds
        while not self.stopping and self.clock.monotonic() < deadline:
            self.clock.sleep(min(0.05, seconds))

    def flush_counts(self) -> None:
        """On the way out: metrics and job rates counted locally are not lost with the child."""
        self.metrics.flush()
        try:
            self.rates.flush(self.clock.time())
        except TRANSIENT_ERRORS as exc:
            log.debug("job rates of the last second not written: %s", exc)

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)
