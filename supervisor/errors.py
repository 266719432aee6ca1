"""Exception tree and the named exit codes operators read in `systemctl status`."""

from __future__ import annotations

# Exit codes of `supervisor run` / `supervisor worker`. Documented in the README.
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected error (a bug: a traceback is printed)
EXIT_USAGE = 2  # bad option or configuration value
EXIT_REDIS_UNAVAILABLE = 3  # Redis unreachable when a command needed it at once
EXIT_NOT_FOUND = 4  # the job / entry asked for does not exist
EXIT_TASK_IMPORT = 5  # the task modules could not be imported: fix the code, do not restart
EXIT_JOB_FAILED = 6  # `enqueue --wait` / `result --wait`: the job failed
EXIT_TIMEOUT = 7  # waited for a result and it did not come in time
# Redis refused us for a reason a restart cannot fix (wrong password, a user
# without the permissions, no such database): fix the settings, do not restart.
EXIT_REDIS_REFUSED = 8
EXIT_JOB_CANCELLED = 9  # `enqueue --wait` / `result --wait`: the job was cancelled or expired
# A child that cannot import the task modules exits with this code so its
# master can tell "broken deploy" from "crashed".
CHILD_EXIT_BOOT_FAILURE = 70
# A child whose master died between fork and its own start (it will not run).
CHILD_EXIT_ORPHANED = 71
# A child that reached --max-jobs-per-child and left on purpose: replace it
# at once, it is not a crash.
CHILD_EXIT_RECYCLE = 72
# A child that Redis refused at boot (see EXIT_REDIS_REFUSED): its master stops
# with EXIT_REDIS_REFUSED instead of restarting it in a loop.
CHILD_EXIT_REDIS_REFUSED = 73
# A child that found the configuration invalid once the task modules were
# imported (a [[schedule]] naming a task they do not define): master exits 2.
CHILD_EXIT_CONFIG = 74
# What a child's exit before booting means for its master: the master's exit
# code and what to say. Restarting such a child cannot help.
BOOT_REFUSALS: dict[int, tuple[int, str]] = {
    CHILD_EXIT_BOOT_FAILURE: (EXIT_TASK_IMPORT, "could not import the task modules"),
    CHILD_EXIT_REDIS_REFUSED: (EXIT_REDIS_REFUSED, "was refused by Redis"),
    CHILD_EXIT_CONFIG: (EXIT_USAGE, "found the configuration invalid"),
}


class SupervisorError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SupervisorError):
    """An option or configuration value is invalid; the message names it."""


class TaskImportError(SupervisorError):
    """A task module named by --tasks could not be imported."""


class UnknownTask(SupervisorError):
    """A message names a task that is not registered in this process."""


class InvalidMessage(SupervisorError):
    """A message could not be decoded or does not follow the job schema."""


class PayloadTooLarge(SupervisorError):
    """The encoded job exceeds the configured size limit."""


class BrokerUnavailable(SupervisorError):
    """Redis could not be reached (after bounded retries)."""


class RedisRefused(SupervisorError):
    """Redis refused us for good (credentials, permission, database); the message says
    which user, server and database, never the password."""


class WriteRefused(BrokerUnavailable):
    """Redis is up but refuses writes for now (out of memory, a failed snapshot, too few
    replicas); the message says why in one sentence."""


class JobNotFound(SupervisorError):
    """No job (or dead letter) with this id exists, or it has expired."""


class AmbiguousJob(ConfigError):
    """An explicit job id used in several queues was looked up without naming the queue."""


class JobTimeout(Exception):
    """Raised inside a task that ran past its `timeout` (soft limit).

    Derives from Exception, not SupervisorError, because it is an outcome of
    the user's task and retry policies test it like any other exception.
    """


class TaskFailed(SupervisorError):
    """The job failed for good; carries what the worker recorded.

    `exc_type`, `message` and `traceback` describe the remote exception;
    `reason` is one of "error", "timeout", "crashed", "invalid", "rejected".
    """

    def __init__(
        self,
        job_id: str,
        exc_type: str,
        message: str,
        traceback: str = "",
        reason: str = "error",
    ) -> None:
        super().__init__(f"job {job_id} failed ({reason}): {exc_type}: {message}")
        self.job_id = job_id
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback
        self.reason = reason


class Retry(Exception):  # noqa: N818 - the name is the public API, as in Celery
    """Raise inside a task to ask for another attempt after `delay` seconds.

    The task's `stop` strategy still applies: once it says stop, the job fails
    with `exc` (or this Retry) as its error.
    """

    def __init__(self, delay: float | None = None, exc: BaseException | None = None) -> None:
        super().__init__(f"retry requested (delay={delay})")
        self.delay = delay
        self.exc = exc


class Reject(Exception):  # noqa: N818 - public API name
    """Raise inside a task to fail the job at once, without retries."""

    def __init__(self, reason: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason


class JobCancelled(SupervisorError):
    """The job was cancelled (or expired before it started).

    Raised inside a running job when a cancel reaches it (so its `finally:`
    blocks run), and by `AsyncResult.get()` for a cancelled job: it says who
    asked, when (epoch seconds) and why (`requested` or `expired`).
    """

    def __init__(self, job_id: str = "", by: str = "", at: float | None = None,
                 reason: str = "requested") -> None:
        self.job_id, self.by, self.at, self.reason = job_id, by, at, reason
        when = ""
        if at:
            import datetime

            stamp = datetime.datetime.fromtimestamp(at, datetime.UTC)
            when = f" at {stamp:%Y-%m-%d %H:%M:%S} UTC"
        if not job_id:  # raised in a thread by its class (PyThreadState_SetAsyncExc)
            text = "the job was cancelled"
        elif reason == "expired":
            text = f"job {job_id} expired{when} before it started"
        else:
            text = f"job {job_id} was cancelled{f' by {by}' if by else ''}{when}"
        super().__init__(text)
