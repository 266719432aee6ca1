"""The price of priorities on the fetch path, measured on a private Redis.

    .venv/bin/python benchmarks/priority_cost.py [--jobs N] [--runs N] [--batch N]

Fetches a backlog of no-op jobs in batches (a worker's COUNT) three ways and
prints, per fetched job, the wall time, this process's CPU time and the Redis
server's CPU time (INFO used_cpu, so the server's side of every command),
median of the runs, interleaved:

- `xreadgroup`: the fetch of main before priorities (one XREADGROUP and the
  HLEN of the queue's cancels, one round trip);
- `no levels`: Broker.fetch now, on a queue that never used a priority (the
  same XREADGROUP and HLEN, and the SMEMBERS of the empty levels set);
- `2 levels`: half the jobs at priority 5 (fetch.lua reads both streams).

Entries are not settled (settle is the same in all three); the private
server is emptied before each run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.redis_server import private_redis  # noqa: E402
from supervisor.broker import keys  # noqa: E402
from supervisor.broker.fetching import deliveries  # noqa: E402
from supervisor.broker.streams import Broker  # noqa: E402
from supervisor.core.job import Job  # noqa: E402

QUEUE = "bench"


def backlog(broker: Broker, jobs: int, levels: bool) -> None:
    requests = []
    for n in range(jobs):
        job = Job(id=f"j{n}", task="noop", queue=QUEUE, priority=5 if levels and n % 2 else 0)
        requests.append((QUEUE, job.id, job.encode(), "{}", 0, 600, False))
    broker.enqueue_many(requests, int(time.time() * 1000))


def plain_fetch(broker: Broker, batch: int) -> int:
    command: Any = ("XREADGROUP", "GROUP", keys.GROUP, "c1", "COUNT", batch,
                    "STREAMS", keys.stream(QUEUE), ">")
    replies = broker.direct.call_many([command, ("HLEN", keys.cancels(QUEUE))])
    return len(deliveries(broker.direct, replies[0], {keys.stream(QUEUE): (QUEUE, 0)}))


def one_run(client: redis.Redis, mode: str, jobs: int, batch: int) -> tuple[float, float, float]:
    client.flushall()
    broker = Broker(client)
    broker.ensure_groups([QUEUE])
    backlog(broker, jobs, mode == "2 levels")
    server_before = _server_cpu(client)
    wall, cpu = time.perf_counter(), time.process_time()
    fetched = 0
    while fetched < jobs:
        if mode == "xreadgroup":
            got = plain_fetch(broker, batch)
        else:
            got = len(broker.fetch("c1", [QUEUE], batch, None))
        if not got:
            break
        fetched += got
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = _server_cpu(client) - server_before
    return wall / fetched * 1e6, cpu / fetched * 1e6, server / fetched * 1e6


def _server_cpu(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    options = parser.parse_args()
    modes = ("xreadgroup", "no levels", "2 levels")
    results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
    with private_redis() as (server, version):
        client = redis.Redis(port=server.port, decode_responses=True)
        for _ in range(options.runs):
            for mode in modes:
                results[mode].append(one_run(client, mode, options.jobs, options.batch))
    print(f"{options.jobs} jobs fetched {options.batch} at a time, median of {options.runs} "
          f"(Redis {version})\n")
    print("| fetch | wall µs/job | client CPU µs/job | Redis CPU µs/job |")
    print("|---|---|---|---|")
    for mode in modes:
        wall, cpu, server_cpu = (statistics.median(r[i] for r in results[mode]) for i in range(3))
        print(f"| {mode} | {wall:.2f} | {cpu:.2f} | {server_cpu:.2f} |")


if __name__ == "__main__":
    main()
