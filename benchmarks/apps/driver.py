"""The producer side of a benchmark run, executed in the system's own virtualenv.

    python -m benchmarks.apps.driver APP enqueue --job incr:20000 [--bulk]
    python -m benchmarks.apps.driver APP send --kind latency --n 2000 --rate 200 [--start-at T]

APP is a module of benchmarks.apps (e.g. `celery_app`) exposing `producer()`
(sync, or async when the module sets ASYNC = True) whose result has
`send(kind, args)`, `send_many(kind, arglists)` and `close()`. Prints one JSON
line: the seconds spent sending (imports and connecting excluded) and the
number of jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import time
from types import ModuleType
from typing import Any


def job_args(kind: str, count: int, arg: str) -> list[tuple[Any, ...]]:
    if kind == "mark":
        return [(index,) for index in range(count)]
    if kind == "sleep":
        return [(float(arg or 1.0),)] * count
    return [()] * count


def parse_jobs(specs: list[str], marker_every: int = 0) -> list[tuple[str, int, str]]:
    """`KIND:COUNT[:ARG]` items, sent in the order given.

    With `marker_every` K, every K-th job of each item is an `incr` instead:
    progress markers that let the harness follow jobs which leave no trace.
    """
    jobs = []
    for spec in specs:
        kind, count_text, *rest = spec.split(":")
        arg, count = (rest[0] if rest else ""), int(count_text)
        if marker_every <= 1:
            jobs.append((kind, count, arg))
            continue
        for _ in range(count // marker_every):
            jobs += [(kind, marker_every - 1, arg), ("incr", 1, "")]
        if count % marker_every:
            jobs.append((kind, count % marker_every, arg))
    return jobs


Jobs = list[tuple[str, int, str]]


def enqueue_sync(app: ModuleType, jobs: Jobs, bulk: bool) -> tuple[float, float]:
    producer = app.producer()
    plans = [(kind, job_args(kind, count, arg)) for kind, count, arg in jobs]
    wall, started = time.time(), time.perf_counter()
    for kind, arglists in plans:
        if bulk:
            producer.send_many(kind, arglists)
        else:
            for args in arglists:
                producer.send(kind, args)
    elapsed = time.perf_counter() - started
    producer.close()
    return elapsed, wall


async def enqueue_async(app: ModuleType, jobs: Jobs, bulk: bool) -> tuple[float, float]:
    producer = await app.producer()
    plans = [(kind, job_args(kind, count, arg)) for kind, count, arg in jobs]
    wall, started = time.time(), time.perf_counter()
    for kind, arglists in plans:
        if bulk:
            await producer.send_many(kind, arglists)
        else:
            for args in arglists:
                await producer.send(kind, args)
    elapsed = time.perf_counter() - started
    await producer.close()
    return elapsed, wall


def wait_until(start_at: float) -> None:
    """Sleep until the wall-clock time `start_at` (0: start now)."""
    pause = start_at - time.time()
    if pause > 0:
        time.sleep(pause)


def send_paced_sync(app: ModuleType, kind: str, count: int, rate: float,
                    start_at: float = 0.0) -> float:
    """One job per call at `rate` per second; `latency` jobs carry their send time."""
    producer = app.producer()
    wait_until(start_at)
    started = time.perf_counter()
    for index in range(count):
        pause = started + index / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        producer.send(kind, (time.time(),) if kind == "latency" else ())
    elapsed = time.perf_counter() - started
    producer.close()
    return elapsed


async def send_paced_async(app: ModuleType, kind: str, count: int, rate: float,
                           start_at: float = 0.0) -> float:
    producer = await app.producer()
    wait_until(start_at)
    started = time.perf_counter()
    for index in range(count):
        pause = started + index / rate - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        await producer.send(kind, (time.time(),) if kind == "latency" else ())
    elapsed = time.perf_counter() - started
    await producer.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", help="module of benchmarks.apps, e.g. celery_app")
    commands = parser.add_subparsers(dest="command", required=True)
    enqueue = commands.add_parser("enqueue")
    enqueue.add_argument("--job", action="append", required=True, help="KIND:COUNT[:ARG]")
    enqueue.add_argument("--bulk", action="store_true")
    enqueue.add_argument("--marker-every", type=int, default=0,
                         help="every K-th job is an incr marker")
    send = commands.add_parser("send")
    send.add_argument("--kind", default="latency")
    send.add_argument("--n", type=int, required=True)
    send.add_argument("--rate", type=float, required=True)
    send.add_argument("--start-at", type=float, default=0.0,
                      help="wall-clock time to send the first job at (after imports and "
                           "connecting)")
    options = parser.parse_args(argv)

    app = importlib.import_module(f"benchmarks.apps.{options.app}")
    is_async = getattr(app, "ASYNC", False)
    if options.command == "enqueue":
        jobs = parse_jobs(options.job, options.marker_every)
        seconds, wall = (asyncio.run(enqueue_async(app, jobs, options.bulk)) if is_async
                         else enqueue_sync(app, jobs, options.bulk))
        count = sum(job[1] for job in jobs)
    else:
        wall = max(time.time(), options.start_at)
        paced = (app, options.kind, options.n, options.rate, options.start_at)
        seconds = (asyncio.run(send_paced_async(*paced)) if is_async
                   else send_paced_sync(*paced))
        count = options.n
    print(json.dumps({"seconds": seconds, "started_at": wall, "jobs": count,
                      "bulk_api": getattr(app, "BULK", False)}))


if __name__ == "__main__":
    main()
