"""The dashboard at scale: 200 nodes' states and 1,000,000 job records in Redis.

    .venv/bin/python benchmarks/dashboard_scale.py [--nodes 200] [--jobs 1000000]

Fills a private Redis (persistence off) with what a large cluster leaves
there -- node states with 8 workers each, heartbeats, job records over 4
queues, the browse index full (broker/recent.py: RECENT_MAX per queue and
state), dead letters, a minute of throughput buckets -- starts a real
`supervisor ui` on it, and times each page and API call over HTTP (median
and max of --repeat calls). A benchmark row, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import redis  # noqa: E402
from ui.ui_harness import UiProcess  # noqa: E402

from benchmarks.redis_server import private_redis  # noqa: E402
from supervisor.broker import keys  # noqa: E402
from supervisor.broker.recent import RECENT_MAX  # noqa: E402

QUEUES = ("default", "reports", "emails", "billing")
TASKS = ("tasks.add", "tasks.render", "tasks.send", "tasks.charge")
WORKERS_PER_NODE = 8


def node_state(name: str, now: float) -> str:
    workers = [{"slot": slot, "pid": 10_000 + slot, "generation": 1, "state": "busy",
                "retiring": False, "job_id": f"{name}-job-{slot}", "task": TASKS[slot % 4],
                "running_for": 1.5, "uptime": 3600.0, "jobs_done": 1000, "jobs_failed": 3,
                "restarts": 0, "last_restart": None, "rss": 80 << 20, "cpu_percent": 12.0}
               for slot in range(WORKERS_PER_NODE)]
    return json.dumps({"node": name, "host": name, "master_pid": 999, "version": "bench",
                       "state": "running", "started_at": now - 3600, "at": now,
                       "uptime": 3600.0, "generation": 1, "workers_target": WORKERS_PER_NODE,
                       "workers_live": WORKERS_PER_NODE, "jobs_done": 8000,
                       "queues": list(QUEUES), "heartbeat_timeout": 10, "restarts": 0,
                       "last_restart": None, "workers": workers})


def record(job_id: str, queue: str, task: str, state: str, now: float) -> str:
    data: dict[str, object] = {"id": job_id, "task": task, "queue": queue, "state": state,
                               "created": now - 60, "enqueued_by": "bench", "attempt": 1,
                               "attempts": [{"attempt": 1, "worker": "n1:1:1",
                                             "started": now - 2, "finished": now - 1,
                                             "outcome": state}],
                               "finished_at": now - 1}
    if state == "succeeded":
        data["result"] = 42
    else:
        data.update(exc_type="ValueError", message="bad input", reason="error",
                    traceback="Traceback ...\nValueError: bad input\n")
    return json.dumps(data)


def fill(client: redis.Redis, nodes: int, jobs: int) -> dict[str, float]:
    now = time.time()
    started = time.monotonic()
    pipe = client.pipeline(transaction=False)
    client.sadd(keys.QUEUES, *QUEUES)
    for index in range(nodes):
        name = f"node-{index:03d}"
        pipe.set(keys.nodestate(name), node_state(name, now), ex=3600)
        pipe.zadd(keys.NODESTATES, {name: now})
        pipe.set(keys.node(name), "{}", ex=3600)
    pipe.execute()
    for queue in QUEUES:
        client.xgroup_create(keys.stream(queue), keys.GROUP, id="0", mkstream=True)
        for second in range(int(now) - 60, int(now)):
            pipe.set(keys.done_bucket(queue, second), 50, ex=3600)
    pipe.execute()
    batch = 10_000
    for start in range(0, jobs, batch):
        at = time.time()  # when this batch "finished": records and dead letters agree
        for index in range(start, min(start + batch, jobs)):
            queue, task = QUEUES[index % 4], TASKS[(index // 4) % 4]
            state = "failed" if index % 50 == 0 else "succeeded"
            job_id = f"job-{index:07d}"
            pipe.set(keys.job(queue, job_id), record(job_id, queue, task, state, at), ex=86400)
            # The index holds what settle.lua would keep: the newest RECENT_MAX.
            if index >= jobs - RECENT_MAX * 4 * 50 or (state == "succeeded"
                                                     and index >= jobs - RECENT_MAX * 8):
                pipe.zadd(keys.recent(queue, state), {job_id: (now - (jobs - index) / 1000)
                                                      * 1000})
            if state == "failed" and index >= jobs - 20_000:
                pipe.xadd(keys.dead(queue), {keys.MESSAGE_FIELD: json.dumps({
                    "id": job_id, "task": task, "queue": queue, "reason": "error",
                    "exc_type": "ValueError", "message": "bad input", "traceback": "...",
                    "attempts": 1, "created": at - 60, "failed_at": at - 1,
                    "job": json.dumps({"id": job_id, "task": task, "args": [index]})})})
        pipe.execute()
    for queue in QUEUES:
        for state in keys.RECENT_STATES:
            client.zremrangebyrank(keys.recent(queue, state), 0, -RECENT_MAX - 1)
    return {"fill_seconds": round(time.monotonic() - started, 1),
            "used_memory_mb": round(int(client.info("memory")["used_memory"]) / 1048576),
            "keys": int(client.dbsize())}


def timed(api: httpx.Client, path: str, repeat: int, **params: str) -> dict[str, object]:
    times, status, size = [], 0, 0
    for _ in range(repeat):
        began = time.perf_counter()
        answer = api.get(path, params=params)
        times.append(time.perf_counter() - began)
        status, size = answer.status_code, len(answer.content)
    return {"path": path + (f"?{httpx.QueryParams(params)}" if params else ""),
            "status": status, "kB": round(size / 1024, 1),
            "median_ms": round(statistics.median(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with private_redis() as (server, version):
        client = redis.Redis(port=server.port, decode_responses=True)
        filled = fill(client, args.nodes, args.jobs)
        logs = Path(f"/tmp/dashboard-scale-{server.port}")
        logs.mkdir(exist_ok=True)
        ui = UiProcess(server.url, logs).start()
        try:
            with ui.client() as api:
                probe = f"job-{args.jobs - 4:07d}"  # succeeded
                failed = f"job-{(args.jobs - 20_000) // 50 * 50 + 50:07d}"  # a dead letter
                rows = [timed(api, "/", args.repeat),
                        timed(api, "/api/overview", args.repeat),
                        timed(api, "/workers", args.repeat),
                        timed(api, f"/api/jobs/{probe}", args.repeat),
                        timed(api, f"/jobs/{probe}", args.repeat),
                        timed(api, f"/jobs/{failed}", args.repeat),
                        timed(api, f"/dead/{failed}", args.repeat),
                        timed(api, "/api/jobs", args.repeat),
                        timed(api, "/api/jobs", args.repeat, state="failed"),
                        timed(api, "/api/jobs", args.repeat, task="tasks.charge",
                              state="succeeded"),
                        timed(api, "/jobs", args.repeat, queue="reports", task="tasks.send"),
                        timed(api, "/api/dead", args.repeat, task="tasks.render")]
        finally:
            ui.stop()
    print(f"redis {version}: {args.nodes} node states ({WORKERS_PER_NODE} workers each), "
          f"{args.jobs:,} job records, {filled}")
    print("| request | status | kB | median ms | max ms |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| `{row['path']}` | {row['status']} | {row['kB']} | {row['median_ms']} | "
              f"{row['max_ms']} |")


if __name__ == "__main__":
    main()
