"""One job slot of a child running --concurrency K > 1 jobs at once.

A slot is the per-job state the runner keeps for the job that runs in it
(at K = 1 the runner keeps that state itself): its deadline, whether the
soft timeout was raised, when it ran. Its index is its record in the status
block the master reads.

The soft timeout of a sync job on a pool thread is raised inside that
thread with PyThreadState_SetAsyncExc, as Dramatiq's time-limit middleware
does: the exception lands at the thread's next bytecode, so a job stuck in
C code (a blocking socket read) sees it only when the call returns; the
master's hard limit (timeout + grace) then kills the child, and the other
jobs it held are recovered and re-run.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from supervisor.broker.streams import Delivery


class Slot:
    """The state of the job running in one slot (written by its thread, read by the main one)."""

    __slots__ = ("index", "thread_id", "lock", "in_task", "deadline", "timeout_raised",
                 "current_task", "ran", "delivery", "task", "job", "value", "settled")

    def __init__(self, index: int) -> None:
        self.index = index
        self.thread_id = 0  # the pool thread running its sync jobs (0: none yet)
        # Held while the soft timeout is raised and while the job leaves the task,
        # so the exception is never raised once the task has returned.
        self.lock = threading.Lock()
        self.in_task = False
        self.deadline = 0.0
        self.timeout_raised = False
        self.current_task = ""
        self.ran = (0.0, 0.0)
        self.delivery: Delivery | None = None
        self.task: Any = None
        self.job: Any = None
        self.value: Any = None  # what the job returned or raised, once it ended
        # Its outcome, when the thread that ran it built it (users' hooks run around
        # the attempt in that thread); None: the main thread builds it from `value`.
        self.settled: Any = None


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Schedule `exc_type` to be raised in thread `thread_id`; False if no such thread."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                      ctypes.py_object(exc_type))
    if done > 1:  # more than one thread state touched: undo, as the C API asks
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return done == 1


def clear_in_thread(thread_id: int) -> None:
    """Drop an exception scheduled by raise_in_thread that has not landed yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
