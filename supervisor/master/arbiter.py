"""The master (arbiter): forks the pool, watches it, obeys operator signals.

The verbs follow gunicorn's arbiter: `spawn_*`, `reap_*`, `retire_*`,
`manage_*`, `murder_*`. `step(now)` is one pass of the loop and `run()` is
the forever loop around it: signals are recorded by `SignalCapture` and
dispatched here from an explicit table, never handled inside a handler.

The master never talks to Redis and never imports task code: children
import the task modules after the fork, so a reload (HUP) sees the code as
it is on disk now. Nothing of this package imports redis or the worker: the
child target is handed in (cli/run.py wires the real one, and preloads the
worker's modules there so children share those pages). What the master
knows about a child comes from the child's shared status block
(`ChildStatus`) and psutil; it never waits on Redis. It reads a child's
exit code and never decides a child's job count: a child leaves by itself
after its --max-jobs-per-child share (CHILD_EXIT_RECYCLE).

At ~420 lines this is over the usual size on purpose: it is one state
machine (loop, signal table, spawn/reap, health, pool, reload, reporting);
its OS work is pool.py and process.py, its verdicts health.py, its reports
observer.py.
"""

from __future__ import annotations

import enum
import gc
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.config import Config
from supervisor.errors import (
    BOOT_REFUSALS,
    CHILD_EXIT_BOOT_FAILURE,
    CHILD_EXIT_RECYCLE,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
)
from supervisor.fork.context import ChildTarget
from supervisor.fork.status import ChildSnapshot, ChildStatus
from supervisor.logs import reopen_log_files
from supervisor.master import health
from supervisor.master.backoff import SlotBackoff
from supervisor.master.children import Child, StatusBlock
from supervisor.master.hooks import run_reload_hooks
from supervisor.master.metrics_http import MasterNumbers
from supervisor.master.observer import Observer, restart_reason
from supervisor.master.pool import Pool
from supervisor.master.process import ExitInfo, ProcessOps, RealProcessOps
from supervisor.master.reload_state import ReloadReport
from supervisor.master.signals import SignalCapture
from supervisor.master.startup import Startup
from supervisor.master.systemd import Notifier, Pacer, watchdog_interval

log = logging.getLogger("supervisor.master")

TICK = 0.2  # seconds between steps when no signal arrives
ABORT_GRACE = 2.0  # SIGABRT (traceback dump) -> SIGKILL for a hung child
QUICK_STOP_TIMEOUT = 5.0  # SIGQUIT -> SIGKILL on a quick stop


class State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # graceful: children finish their job
    QUITTING = "quitting"  # quick: children abandon their job


@dataclass(frozen=True, slots=True)
class Reload:
    """A reload in progress: what to go back to if the new generation cannot boot."""

    previous_config: Config
    previous_workers: int
    previous_generation: int
    deadline: float


class Master:
    """The arbiter. Construct with a Config; tests replace the OS seams."""

    def __init__(
        self,
        config: Config,
        *,
        target: ChildTarget,
        load: Callable[[], Config] | None = None,
        ops: ProcessOps | None = None,
        probe: Callable[[int], health.Probe] = health.probe,
        notifier: Notifier | None = None,
        new_status: Callable[..., StatusBlock] = ChildStatus,
        wall_clock: Callable[[], float] = time.time,
        watchdog: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.config = config
        self.load = load
        self.target = target
        self.pool = Pool(ops or RealProcessOps(), new_status,
                         node_state=observer.buffer if observer else None,
                         metrics_dir=observer.metrics_dir if observer else None)
        if observer is not None and observer.server is not None:
            self.pool.close_in_child.append(observer.server.close)
        self.probe = probe
        self.notifier = notifier or Notifier()
        self.wall_clock = wall_clock
        self.pacer = Pacer(self.notifier, watchdog if watchdog is not None else watchdog_interval())

        self.workers = config.workers
        self.generation = 1
        self._last_generation = 1
        self.backoff = SlotBackoff()
        self.state = State.RUNNING
        self.stop_code = EXIT_OK
        self.exit_code: int | None = None
        self.reload: Reload | None = None
        self.ready_sent = False
        self.last_restart = "none"
        self.restarts: Counter[str] = Counter()  # by reason (restart_reason)
        self.slot_restarts: dict[int, tuple[int, str]] = {}  # slot -> (count, last reason)
        self.rss: dict[int, int] = {}  # pid -> RSS at the last health probe
        self.observer = observer  # node state and /metrics (run_master)
        self.startup = Startup()  # waiting for Redis at boot; did the pool ever serve
        self.reloads = ReloadReport(config.pidfile)  # for `reload --wait` and STATUS=
        self.signal_table: dict[int, Callable[[float], None]] = {
            signal.SIGTERM: self.on_term,
            signal.SIGINT: self.on_quit,
            signal.SIGQUIT: self.on_quit,
            signal.SIGHUP: self.on_hup,
            signal.SIGTTIN: self.on_ttin,
            signal.SIGTTOU: self.on_ttou,
            signal.SIGUSR1: self.on_usr1,
            signal.SIGCHLD: self.on_chld,
        }

    @property
    def children(self) -> dict[int, Child]:
        return self.pool.children

    @property
    def limits(self) -> health.Limits:
        return health.Limits.from_config(self.config.heartbeat_timeout,
                                         self.config.max_memory_per_child)

    # --- the loop ------------------------------------------------------------

    def run(self, clock: Callable[[], float] = time.monotonic) -> int:
        """Run until stopped; return the exit code. Call from the main thread."""
        capture = SignalCapture(self.signal_table)
        capture.install()
        self.pool.capture = capture
        try:
            while self.exit_code is None:
                now = clock()
                self.dispatch(capture.pending(), now)
                self.step(now)
                if self.exit_code is None:
                    capture.wait(TICK)
            return self.exit_code
        finally:
            self.pool.murder_all()
            capture.restore()
            self.pool.capture = None
            self.notifier.close()

    def dispatch(self, signals: list[int], now: float) -> None:
        for signum in signals:
            self.signal_table[signum](now)

    def step(self, now: float) -> None:
        """One pass: reap, judge health, kill the overdue, fill the pool, report."""
        self.reap_children(now)
        self.manage_health(now)
        self.pool.murder_overdue(now)
        if self.state is State.RUNNING:
            self.manage_workers(now)
            self.manage_reload(now)
        self.report(now)
        if self.observer is not None:
            self.observer.tick(self, now)
        if self.state is not State.RUNNING and not self.pool:
            self.exit_code = self.startup.exit_code(self.stop_code)

    # --- signals -------------------------------------------------------------

    def on_term(self, now: float) -> None:
        if self.state is State.RUNNING:
            log.info("SIGTERM: graceful stop (up to %.0fs)", self.config.graceful_timeout)
            self.notifier.stopping(self.status_line())
            self.state = State.STOPPING
            self.reload = None
            for child in self.pool:
                self.retire_child(child, now, "stop")
        elif self.state is State.STOPPING:
            log.info("second SIGTERM: quick stop")
            self.stop_quickly(now)

    def on_quit(self, now: float) -> None:
        if self.state is not State.QUITTING:
            log.info("quick stop requested")
            self.stop_quickly(now)

    def on_hup(self, now: float) -> None:
        self.reloads.asked()
        if self.state is not State.RUNNING:
            self.reloads.failed("the master is stopping", EXIT_USAGE, self.generation)
            return
        try:
            new_config = self.load() if self.load else self.config
        except ConfigError as exc:
            log.error("SIGHUP: reload refused, keeping the running configuration: %s", exc)
            self.reloads.failed(f"configuration refused: {exc}", EXIT_USAGE, self.generation)
            return
        self.begin_reload(new_config, now)

    def on_ttin(self, now: float) -> None:
        if self.state is State.RUNNING:
            self.workers += 1
            log.info("SIGTTIN: workers %d -> %d", self.workers - 1, self.workers)

    def on_ttou(self, now: float) -> None:
        if self.state is not State.RUNNING:
            return
        if self.workers <= 1:
            log.info("SIGTTOU ignored: never fewer than 1 worker")
            return
        self.workers -= 1
        log.info("SIGTTOU: workers %d -> %d", self.workers + 1, self.workers)

    def on_usr1(self, now: float) -> None:
        log.info("SIGUSR1: reopened %d log file(s)", reopen_log_files())
        for child in self.pool:  # each child reopens its own (inherited) handlers
            self.pool.signal(child, signal.SIGUSR1)

    def on_chld(self, now: float) -> None:
        """Only wakes the loop: reaping happens in step()."""

    def stop_quickly(self, now: float, code: int | None = None) -> None:
        if self.state is State.RUNNING:
            self.notifier.stopping(self.status_line())
        self.state = State.QUITTING
        self.reload = None
        if code is not None:
            self.stop_code = code
        for child in self.pool:
            self.pool.quit(child, now, QUICK_STOP_TIMEOUT)

    # --- spawning and reaping ------------------------------------------------

    def spawn_child(self, slot: int, now: float) -> Child | None:
        # The child inherits the master's objects frozen: its collections never
        # walk them, so they stay shared pages instead of copies (gc docs, "freeze").
        gc.freeze()
        try:
            return self.pool.spawn(self.target, self.config, slot, self.generation, now)
        except OSError as exc:
            wait = self.backoff.record_exit(slot, now, healthy_for=0.0, failed=True)
            log.error("cannot fork worker %d: %s (next try in %.1fs)", slot, exc, wait)
            return None
        finally:
            gc.unfreeze()  # the master itself keeps collecting as usual

    def reap_children(self, now: float) -> None:
        for child, info, snap in self.pool.reap():
            self.reap_child(child, info, snap, now)

    def reap_child(self, child: Child, info: ExitInfo, snap: ChildSnapshot, now: float) -> None:
        # A child that ran its --max-jobs-per-child share leaves by itself.
        refused = info.code in BOOT_REFUSALS and not snap.booted and not child.retiring
        expected = (child.retiring or self.state is not State.RUNNING
                    or info.code == CHILD_EXIT_RECYCLE or refused)
        why = f" ({child.reason})" if child.reason else ""
        if info.code == CHILD_EXIT_RECYCLE:
            why = " (recycled: ran its --max-jobs-per-child share)"
        if expected:
            log.info("%s exited: %s%s", child.label(), info.describe(), why)
        else:
            log.warning("%s died: %s%s", child.label(), info.describe(), why)
            stamp = time.strftime("%H:%M:%S", time.localtime(self.wall_clock()))
            self.last_restart = f"worker {child.slot} at {stamp} ({info.describe()})"
        self.count_restart(child, info, expected)
        if refused and info.code is not None:
            self.boot_failed(child, now, info.code, snap.task)
        elif not child.retiring:
            healthy_for = now - child.started if snap.booted else 0.0
            wait = self.backoff.record_exit(child.slot, now, healthy_for, failed=not expected)
            if wait > 0 and self.state is State.RUNNING:
                log.warning("worker %d keeps failing: next start in %.1fs", child.slot, wait)

    def count_restart(self, child: Child, info: ExitInfo, expected: bool) -> None:
        """Book a replaced child (for status and metrics); forget its probes."""
        self.rss.pop(child.pid, None)
        if self.observer is not None:
            self.observer.reaped(child.pid)
        reason = restart_reason(child, info, expected, self.state is State.RUNNING)
        if reason is not None:
            self.restarts[reason] += 1
            count, _ = self.slot_restarts.get(child.slot, (0, ""))
            self.slot_restarts[child.slot] = (count + 1, reason)

    def boot_failed(self, child: Child, now: float, child_code: int, reason: str) -> None:
        """A child left before booting for a reason a restart cannot fix (BOOT_REFUSALS):
        a broken deploy, Redis refusing us, an invalid configuration; not a crash."""
        code, what = BOOT_REFUSALS[child_code]
        if child_code == CHILD_EXIT_BOOT_FAILURE:
            what += f" {','.join(self.config.tasks) or '(none)'}"
        what += f": {reason}" if reason else ""
        reload = self.reload
        if reload is not None and child.generation == self.generation:
            log.error("reload failed: %s %s. Keeping generation %d: fix it, then send SIGHUP "
                      "again.", child.label(), what, reload.previous_generation)
            self.abort_reload(reload, now, f"a new worker {what}", code)
        elif child.generation != self.generation:
            # An old generation's, or one more of a reload abandoned already (its
            # children often fail in the same tick): not the serving generation's.
            log.info("%s of a generation not serving failed to boot; ignored", child.label())
        elif self.state is State.RUNNING:
            log.error("%s %s. Stopping with exit code %d (the worker exited %d before "
                      "booting): fix it, then start again.", child.label(), what, code,
                      child_code)
            self.stop_quickly(now, code=code)

    # --- health ----------------------------------------------------------------

    def manage_health(self, now: float) -> None:
        limits = self.limits
        for child in self.pool:
            if child.killed:
                continue
            probed = self.probe(child.pid)
            if probed.alive:  # the dead are reaped on the next step
                self.rss[child.pid] = probed.rss
                snap = child.status.read()
                self.judge_child(child, snap, health.judge(snap, probed, now, limits), probed, now)

    def judge_child(
        self, child: Child, snap: ChildSnapshot, verdict: health.Verdict, probed: health.Probe,
        now: float,
    ) -> None:
        if verdict is health.Verdict.HUNG and not child.aborted:
            log.error("%s is hung (no heartbeat for %.1fs): SIGABRT for a traceback, "
                      "SIGKILL in %.0fs", child.label(), now - snap.heartbeat, ABORT_GRACE)
            self.pool.abort(child, now, ABORT_GRACE)
        elif verdict is health.Verdict.OVERTIME:
            job_id, task = health.overtime_job(snap, now)
            log.error("%s: job %s (%s) ran past its timeout: SIGKILL", child.label(), job_id,
                      task + (f" (and {len(snap.jobs) - 1} more jobs in flight, recovered)"
                              if len(snap.jobs) > 1 else ""))
            child.reason = child.reason or "job over its time limit"
            self.pool.murder(child)
        elif verdict.recycles and not child.retiring and self.state is State.RUNNING:
            log.info("%s recycled: %s (RSS %d MB)", child.label(), verdict.value,
                     probed.rss // health.MB)
            self.retire_child(child, now, f"recycled: {verdict.value}")

    def retire_child(self, child: Child, now: float, reason: str) -> None:
        """Ask a child to finish its job and leave; SIGKILL after graceful_timeout."""
        self.pool.retire(child, now, reason, self.config.graceful_timeout)

    # --- the pool ----------------------------------------------------------------

    def manage_workers(self, now: float) -> None:
        """Fill empty slots of the current generation; retire what is surplus."""
        current: set[int] = set()
        for child in self.pool:
            if child.retiring or child.killed:
                continue
            if child.generation == self.generation:
                if child.slot > self.workers:
                    self.retire_child(child, now, "scaled down")
                else:
                    current.add(child.slot)
            elif self.reload is None:
                self.retire_child(child, now, "old generation")
        for slot in range(1, self.workers + 1):
            if slot not in current and self.backoff.may_spawn(slot, now):
                self.spawn_child(slot, now)

    def begin_reload(self, new_config: Config, now: float) -> None:
        previous = self.reload  # a HUP during a reload keeps the last good state
        self.reload = Reload(
            previous_config=previous.previous_config if previous else self.config,
            previous_workers=previous.previous_workers if previous else self.workers,
            previous_generation=previous.previous_generation if previous else self.generation,
            deadline=now + self.limits.boot_timeout,
        )
        self._last_generation += 1
        self.config, self.workers = new_config, new_config.workers
        self.generation = self._last_generation
        log.info("SIGHUP: reloading: generation %d with %d workers", self.generation, self.workers)
        self.reloads.begun(self.generation)
        self.notifier.reloading(self.status_line())
        run_reload_hooks(new_config, self.generation, self.reload.previous_generation)

    def manage_reload(self, now: float) -> None:
        """Retire the old generation once the new one has booted (never zero workers)."""
        reload = self.reload
        if reload is None:
            return
        booted = self.pool.booted(self.generation, self.workers)
        if booted < self.workers and not (now >= reload.deadline and booted > 0):
            return
        if booted < self.workers:
            log.warning("reload: only %d of %d new workers booted in time", booted, self.workers)
        for child in self.pool:
            if child.generation != self.generation:
                self.retire_child(child, now, "replaced by reload")
        self.reload = None
        log.info("reload done: generation %d is serving", self.generation)
        self.reloads.done(self.generation)
        self.notifier.ready(self.status_line())

    def abort_reload(self, reload: Reload, now: float, why: str, code: int) -> None:
        failed = self.generation
        self.config = reload.previous_config
        self.workers = reload.previous_workers
        self.generation = reload.previous_generation
        self.reload = None
        for child in self.pool:
            if child.generation == failed:
                self.retire_child(child, now, "reload failed")
        self.reloads.failed(why, code, failed)
        self.notifier.ready(self.status_line())

    # --- reporting ---------------------------------------------------------------

    def status_line(self) -> str:
        return (f"{self.reloads.status()}{self.startup.status()}"
                f"{self.pool.workers_up()}/{self.workers} workers up (gen {self.generation}), "
                f"{self.pool.jobs_done()} jobs done, last restart: {self.last_restart}")

    def numbers(self) -> MasterNumbers:
        """The master's own metrics, read at scrape time."""
        return MasterNumbers(self.pool.workers_up(), self.workers, self.generation,
                             dict(self.restarts))

    def report(self, now: float) -> None:
        """READY once the first generation booted, STATUS on change, WATCHDOG on time."""
        self.startup.observe(self.pool)
        self.pool.served = self.startup.served  # children forked from now on are told
        if (self.state is State.RUNNING and not self.ready_sent and self.reload is None
                and self.pool.booted(self.generation, self.workers) >= self.workers):
            self.ready_sent = True
            log.info("ready: %d workers up", self.workers)
            self.notifier.ready(self.status_line())
        self.pacer.tick(now, self.status_line())
