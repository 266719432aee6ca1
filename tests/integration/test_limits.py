"""Rate and concurrency limits across three real nodes (`supervisor run --node-name`).

The tasks record their own start (and end) times in Redis (limit_tasks.py); the tests
count from those: starts per second under a rate limit, jobs running at once under a
concurrency limit, and what a SIGKILL of a whole node holding slots does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import limit_tasks
import pytest
import redis
from helpers import wait_until
from node_process import Node
from redis_server import free_port
from test_observability import scrape

from supervisor import enqueue_many
from supervisor.broker import keys
from supervisor.broker.limits import limit_counts

HERE = Path(__file__).resolve().parent
HEARTBEAT = 2.0  # the nodes' --heartbeat-timeout: the node-death bound is about this
PREFETCH_CAP = 64  # the nodes' --prefetch (the default): the most one fetch takes

pytestmark = pytest.mark.usefixtures("producer")


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def nodes(redis_url: str, tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []

    def make(name: str, workers: int, queues: str, *options: str) -> Node:
        node = Node(name, workers=workers, redis_url=redis_url, log_dir=tmp_path,
                    heartbeat_timeout=HEARTBEAT, result_ttl=600, tasks="limit_tasks",
                    cwd=HERE, queues=queues, options=options)
        made.append(node)
        return node

    yield make  # type: ignore[misc]
    for node in made:
        node.terminate(timeout=20)
        node.reap_group()


def start_all(nodes: list[Node]) -> None:
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready(timeout=60)


def times(client: redis.Redis, key: str) -> list[float]:
    return sorted(float(value) for value in client.lrange(key, 0, -1))


def rated_starts(client: redis.Redis) -> list[tuple[float, int]]:
    """(start time, enqueue index) of each start of limit_tasks.rated, in start order."""
    return sorted((float(at), int(i)) for at, i in
                  (value.split() for value in client.lrange("t:rated", 0, -1)))


def most_in_any_window(starts: list[float], width: float) -> int:
    """The most starts in any window [t, t + width) (sliding, not buckets from the first
    start): the busiest window begins at some start, so a two-pointer pass finds it."""
    most = end = 0
    for begin, at in enumerate(starts):
        while end < len(starts) and starts[end] < at + width:
            end += 1
        most = max(most, end - begin)
    return most


def rank_correlation(order: list[int]) -> float:
    """Spearman's rank correlation of start rank vs enqueue index (distinct indices)."""
    ranks = {i: rank for rank, i in enumerate(sorted(order))}
    n = len(order)
    squares = sum((position - ranks[i]) ** 2 for position, i in enumerate(order))
    return 1 - 6 * squares / (n * (n * n - 1))


def displacement(order: list[int]) -> int:
    """The most places any job started away from its turn in the enqueue order."""
    ranks = {i: rank for rank, i in enumerate(sorted(order))}
    return max(abs(position - ranks[i]) for position, i in enumerate(order))


# Starts a window of task start times may hold beyond what the gate let start in it: a
# job lets its task begin a little after its turn (see the rate test).
START_LAG = 1


def per_second(starts: list[float], first: float, seconds: int) -> list[int]:
    counts = [0] * seconds
    for at in starts:
        if first <= at < first + seconds:
            counts[int(at - first)] += 1
    return counts


def test_a_rate_limit_holds_across_three_nodes_for_ten_seconds(
        client: redis.Redis, nodes: object) -> None:
    # Three nodes of two workers, one of them running two jobs at once per child.
    start_all([nodes("a", 2, "default"), nodes("b", 2, "default"),  # type: ignore[operator]
               nodes("c", 2, "default", "--concurrency", "2")])  # type: ignore[operator]
    results = enqueue_many(limit_tasks.rated.s(i) for i in range(800))
    wait_until(lambda: client.llen("t:rated") >= 560, timeout=40, interval=0.2,
               what="eleven seconds of starts")
    starts = [at for at, _ in rated_starts(client)]
    first = starts[0]
    counts = per_second(starts, first, 10)
    # 50/s with a burst of 5 (a tenth of the count): in any second at most 55 are let
    # start, and after the first second's burst the turns come one every 20 ms. What is
    # counted here is when each task began, its turn plus its pickup (a few ms; tens on
    # this 2-core machine under load): a start whose turn came just before a window may
    # fall inside it, one at most while that lag stays under a turn (20 ms).
    assert max(counts) <= 55 + START_LAG, counts
    total = sum(counts)
    assert 485 <= total <= 510, (total, counts)  # 500 turns + the burst, within 3 %
    waiting = limit_counts(client, "default")["limit_tasks.rated"].waiting_rate
    assert waiting > 0  # the rest wait in Redis for their turns, not in the workers
    assert client.zcard(keys.delayed("default")) > 0
    assert results[-1].id  # every job is accounted for below
    wait_until(lambda: client.llen("t:rated") == 800, timeout=40, interval=0.2,
               what="every job runs at last")
    assert len({r.get(timeout=10) for r in results}) == 800  # none lost, none twice
    assert not limit_counts(client, "default")  # nothing waits any more
    everything = rated_starts(client)
    # Not only the buckets counted from the first start: no window of one second,
    # wherever it begins, saw more than 50 + the burst of 5 start.
    assert most_in_any_window([at for at, _ in everything], 1.0) <= 55 + START_LAG
    order = [i for _, i in everything]
    # The starts keep roughly the enqueue order: a job starts in the order of its turn,
    # and turns are given in the order the gate meets the jobs. Seven consumers fetch
    # the backlog at once, so a batch fetched first may be gated after the batches
    # other consumers fetched meanwhile: a job is overtaken by at most what the six
    # others hold fetched and not yet gated, one batch each of at most the prefetch
    # cap (64). Measured: 128-132 places, rank correlation 0.98-0.998, on a quiet
    # machine and with two CPU hogs on this 2-core one.
    assert displacement(order) <= 6 * PREFETCH_CAP, displacement(order)
    # Within that bound the worst order (the first seven batches reversed) still has a
    # rank correlation of 0.66: lower, and the order was not kept.
    assert rank_correlation(order) > 0.65, rank_correlation(order)


def test_per_key_rate_limits_hold_per_key_and_another_key_runs_freely(
        client: redis.Redis, nodes: object, redis_url: str) -> None:
    port = free_port()
    start_all([nodes("a", 2, "default", "--metrics-port", str(port)),  # type: ignore[operator]
               nodes("b", 2, "default")])  # type: ignore[operator]
    # 150 at 10/s: big waits for its turns for 15 s, through every check below.
    backlog = enqueue_many(limit_tasks.per_tenant.s("big", i) for i in range(150))
    wait_until(lambda: client.llen("t:tenant:big") >= 3, timeout=20, what="big started")
    small = enqueue_many(limit_tasks.per_tenant.s("small", i) for i in range(10))
    for result in small:  # 10 jobs at 10/s: about a second, not behind big's 15
        result.get(timeout=20)
    big = times(client, "t:tenant:big")
    small_starts = times(client, "t:tenant:small")
    assert len(big) < 100  # big is still being held to its rate meanwhile
    for starts in (big, small_starts):
        # 10/s with a burst of 1: turns 100 ms apart, at most 11 in each second
        assert max(per_second(starts, starts[0], int(starts[-1] - starts[0]) + 1)) <= 11
    # Visible while big's jobs wait: `queues --json` per task, the job's timeline, the
    # counter of jobs sent to wait.
    cli = [sys.executable, "-m", "supervisor"]
    shown, text, status = (json.loads(out) if out.startswith(("[", "{")) else out
                           for out in run_all([[*cli, "queues", "--json", "--redis-url",
                                                redis_url],
                                               [*cli, "queues", "--redis-url", redis_url],
                                               [*cli, "status", "--json", "--redis-url",
                                                redis_url]]))
    row = next(item for item in shown if item["queue"] == "default")
    assert row["limited"]["limit_tasks.per_tenant"]["rate"] > 0
    assert "  limit_tasks.per_tenant: " in text and "waiting for a rate turn" in text
    row = next(item for item in status["queues"] if item["queue"] == "default")
    assert row["limited"]["limit_tasks.per_tenant"]["rate"] > 0
    limited = (("kind", "rate"), ("queue", "default"), ("task", "limit_tasks.per_tenant"))
    wait_until(lambda: scrape(port).get("supervisor_jobs_limited_total", {}).get(limited),
               timeout=10, what="the jobs sent to wait are counted")
    waited_one = backlog[30]
    waited_one.get(timeout=30)
    last = waited_one.info()  # its record, written when it ran, keeps the wait
    waited = [entry for entry in last.get("attempts", [])
              if entry.get("outcome") == "waited for limit"]
    assert waited and waited[0]["reason"] == "rate"
    assert waited[0]["limit"] == "limit_tasks.per_tenant[big]"
    timeline = json.loads(subprocess.run(
        [sys.executable, "-m", "supervisor", "job", waited_one.id, "--json",
         "--redis-url", redis_url], capture_output=True, text=True, check=True).stdout)
    assert any(event["event"] == "waited for limit" for event in timeline["events"])


def run_all(commands: list[list[str]]) -> list[str]:
    """Run CLI commands at once (each a Python start-up: together, they all see the same
    moment of the backlog); their stdout."""
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
               for command in commands]
    outs = [process.communicate(timeout=60)[0] for process in running]
    assert all(process.returncode == 0 for process in running)
    return outs


def running_at_once(events: list[str]) -> int:
    moments = []
    for event in events:
        kind, at, _ = event.split(" ", 2)
        moments.append((float(at), 1 if kind == "s" else -1))
    # An end before a start at the same instant: a slot freed, then taken.
    moments.sort(key=lambda moment: (moment[0], moment[1]))
    running = most = 0
    for _, step in moments:
        running += step
        most = max(most, running)
    return most


def test_a_concurrency_limit_holds_on_three_nodes_and_per_key(
        client: redis.Redis, nodes: object) -> None:
    start_all([nodes("a", 3, "capped"), nodes("b", 2, "capped"),  # type: ignore[operator]
               nodes("c", 2, "capped,other", "--concurrency", "3")])  # type: ignore[operator]
    capped = enqueue_many(limit_tasks.capped.s(i, 0.1) for i in range(60))
    accounts = enqueue_many(limit_tasks.per_account.s(name, i)
                            for i in range(10) for name in ("x", "y"))
    for result in [*capped, *accounts]:
        result.get(timeout=60)
    events = client.lrange("t:capped", 0, -1)
    assert len(events) == 120
    assert running_at_once(events) == 5  # never more, and the limit was used
    account = client.lrange("t:account", 0, -1)
    for name in ("x", "y"):
        mine = [event for event in account if event.endswith(" " + name)]
        assert running_at_once(mine) == 2
    assert running_at_once(account) > 2  # one account's limit does not hold the other
    wait_until(lambda: not client.exists(*keys.limit_keys("capped")[:3]), timeout=10,
               what="no slot held, none waiting")


def test_a_limit_key_that_fails_counts_under_the_tasks_own_limit(
        client: redis.Redis, nodes: object) -> None:
    """A limit_key that raises, or returns no string, is a bug of the task: the worker logs
    it and counts the job under the task's own limit (limited, never unlimited), while
    the keys that work keep their own limits."""
    node = nodes("a", 2, "capped", "--concurrency", "4")  # type: ignore[operator]
    start_all([node])
    jobs = enqueue_many(limit_tasks.keyless.s(account, i) for i in range(8)
                        for account in ("raises", "number", "good"))
    assert [result.get(timeout=60) for result in jobs] == [i for i in range(8)
                                                            for _ in range(3)]
    events = client.lrange("t:keyless", 0, -1)
    assert len(events) == 48
    broken = [event for event in events if not event.endswith(" good")]
    # Both broken keys share the task's own 2 slots: never more than 2 of them at once
    # (8 slots on the node: unlimited, up to 8 would run), and the limit was used.
    assert running_at_once(broken) == 2
    assert running_at_once([event for event in events if event.endswith(" good")]) == 2
    assert running_at_once(events) > 2  # the working key ran beside them, on its own limit
    log = node.log_path.read_text()
    assert "limit_key of limit_tasks.keyless raised KeyError" in log
    assert "limit_key of limit_tasks.keyless returned int, not str" in log
    assert "counts under the limit of limit_tasks.keyless" in log
    wait_until(lambda: not client.exists(*keys.limit_keys("capped")[:3]), timeout=10,
               what="no slot held, none waiting")


def test_a_killed_node_frees_its_slots_within_the_node_death_bound(
        client: redis.Redis, nodes: object) -> None:
    first = nodes("first", 5, "capped")  # type: ignore[operator]
    start_all([first])
    long = enqueue_many(limit_tasks.capped.s(i, -1) for i in range(5))  # 60 s on first run
    wait_until(lambda: client.llen("t:capped") == 5, timeout=30, what="five slots held")
    second = nodes("second", 3, "capped")  # type: ignore[operator]
    start_all([second])
    short = enqueue_many(limit_tasks.capped.s(i, 0.05) for i in range(100, 110))
    wait_until(lambda: limit_counts(client, "capped")["limit_tasks.capped"].waiting_slot,
               timeout=10, what="the short jobs wait for a slot")
    assert client.llen("t:capped") == 5  # none of them started
    killed = time.time()
    first.kill_group()
    # Freed by the liveness rules (heartbeat gone, then a sweep), no timeout guessed.
    for result in [*short, *long]:
        result.get(timeout=HEARTBEAT + 20)
    events = client.lrange("t:capped", 0, -1)
    # The five slots are taken again within the node-death bound (README, "Recovery
    # bounds": --heartbeat-timeout + 2 s until another node hands the jobs back, which
    # frees their slots and wakes five waiters in the same step), plus 1.5 s for the
    # wake, fetch, gate and start of a child's task on a loaded machine. Measured: the
    # fifth start 1.7-1.9 s after the kill, 2.3-2.5 s with a CPU hog on 2 cores.
    restarts = sorted(float(e.split()[1]) for e in events[5:] if e.startswith("s "))
    assert len(restarts) >= 5
    assert restarts[4] - killed <= HEARTBEAT + 2 + 1.5, [t - killed for t in restarts[:5]]
    # The five killed runs ended with their node.
    events[5:5] = [f"e {killed:.6f} {i}" for i in range(5)]
    assert running_at_once(events) <= 5
    ended = {event.split()[2] for event in client.lrange("t:capped", 0, -1)
             if event.startswith("e ")}
    assert ended >= {str(i) for i in range(5)} | {str(i) for i in range(100, 110)}
    wait_until(lambda: not client.exists(*keys.limit_keys("capped")[:3]), timeout=10,
               what="no slot leaked")


def test_limits_hold_for_jobs_on_priority_levels(client: redis.Redis, nodes: object) -> None:
    """Jobs of a limited task enqueued with priorities are gated out of the stream of
    their level (the gate acknowledges each entry where it was read): the concurrency
    limit holds over levels 0, 3 and 9 together and every job runs once."""
    start_all([nodes("a", 2, "capped"), nodes("b", 2, "capped",  # type: ignore[operator]
                                              "--concurrency", "3")])
    jobs = [limit_tasks.capped.apply_async((i, 0.05), priority=(0, 3, 9)[i % 3])
            for i in range(45)]
    assert [result.get(timeout=60) for result in jobs] == list(range(45))
    events = client.lrange("t:capped", 0, -1)
    assert len(events) == 90 and running_at_once(events) == 5
    assert sorted(int(e.split()[2]) for e in events if e.startswith("s ")) == list(range(45))
    for level in (0, 3, 9):
        assert client.xlen(keys.level_stream("capped", level)) == 0
    wait_until(lambda: not client.exists(*keys.limit_keys("capped")[:3]), timeout=10,
               what="no slot held, none waiting")
