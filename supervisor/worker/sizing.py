"""How much work a worker takes: the size of a fetch, and its share before a recycle."""

from __future__ import annotations

HOLD_TARGET = 0.1  # seconds of work one fetch may hold (so no idle worker starves)


class FetchSizer:
    """How many jobs to fetch at once: about HOLD_TARGET seconds of work, at most `cap`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.average = HOLD_TARGET  # unknown at start: fetch one at a time

    def observe(self, seconds: float) -> None:
        self.average = 0.8 * self.average + 0.2 * seconds

    def sent_to_wait(self, jobs: int) -> None:
        """Jobs the limit gate sent to wait in Redis: they cost this worker no time, so
        they count as jobs of none. Else a worker meeting a backlog of limited jobs gates
        it one or two per fetch (the size for jobs that run), and the turns that come due
        meanwhile wait behind the backlog's tail in the stream: on a loaded machine, a
        rate-limited task saw a second without a start."""
        for _ in range(jobs):
            self.observe(0.0)

    @property
    def count(self) -> int:
        return max(1, min(self.cap, int(HOLD_TARGET / max(self.average, 1e-6))))


def jobs_jitter(max_jobs: int, draw: float) -> int:
    """Extra jobs (0..10 % of the limit) so children do not recycle together.

    `draw` is a uniform number in [0, 1), from the caller's random source.
    """
    if max_jobs <= 0:
        return 0
    return int(draw * (max_jobs // 10 + 1))


def job_share(max_jobs: int, draw: float) -> int:
    """The jobs this child runs before it leaves to be replaced (0: never).

    The child decides it, once, with its own draw: the master only reads the
    exit code (CHILD_EXIT_RECYCLE), as billiard's pool does.
    """
    return max_jobs + jobs_jitter(max_jobs, draw) if max_jobs > 0 else 0
