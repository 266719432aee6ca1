"""`supervisor status` (nodes, workers, queues) and `supervisor job` (one job's timeline)."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from supervisor.cli.app import (
    AsJson,
    JobQueue,
    RedisPasswordFile,
    RedisUrl,
    app,
    connected,
    emit_json,
    user_errors,
)
from supervisor.cli.text import printable
from supervisor.core.timefmt import span as _span
from supervisor.core.timefmt import stamp as _stamp


def _client(redis_url: str | None, redis_password_file: str | None) -> Any:
    return connected(redis_url, redis_password_file)[0]


_STATUS_STYLE = {"alive": "green", "stale": "yellow", "dead": "bold red"}


def _console() -> Console:
    # Piped into grep or a file: the full width, never names cut to "…".
    return Console(highlight=False) if sys.stdout.isatty() else Console(highlight=False,
                                                                         width=200)


def _row(table: Table, *cells: Any) -> None:
    """A row of text from Redis: control characters escaped, no rich markup read into it."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(printable(cell))
                    for cell in cells))


def workflows_text(row: dict[str, Any]) -> str:
    """A queue row's workflows ("2 workflows running, 5 succeeded, 1 failed"; '' if none)."""
    counts = [(state, int(row.get(f"workflows_{state}") or 0))
              for state in ("running", "succeeded", "failed")]
    shown = [f"{count} {state}" for state, count in counts if count]
    return f"workflows: {', '.join(shown)}" if shown else ""


def render_status(doc: dict[str, Any]) -> Group:
    """The three tables of `supervisor status`."""
    nodes = Table(title="nodes", title_justify="left")
    for column in ("node", "status", "host", "master pid", "version", "uptime", "gen",
                   "workers", "jobs done", "restarts", "seen"):
        nodes.add_column(column, justify="right" if column in (
            "master pid", "gen", "jobs done", "restarts") else "left", overflow="fold")
    workers = Table(title="workers", title_justify="left")
    for column in ("node", "slot", "pid", "state", "job", "task", "running", "done", "failed",
                   "restarts", "RSS MB", "CPU%"):
        workers.add_column(column, justify="right" if column in (
            "slot", "pid", "done", "failed", "restarts", "RSS MB", "CPU%") else "left",
            overflow="fold")
    for node in doc["nodes"]:
        status = printable(node.get("status", "?"))
        _row(
            nodes, node["node"], Text(status, style=_STATUS_STYLE.get(status, "")),
            str(node.get("host", "")), str(node.get("master_pid", "")),
            str(node.get("version", "")), _span(node.get("uptime")),
            str(node.get("generation", "")),
            f"{node.get('workers_live', 0)}/{node.get('workers_target', 0)}",
            str(node.get("jobs_done", 0)), str(node.get("restarts", 0)),
            f"{_span(node.get('age'))} ago")
        for worker in node.get("workers", []):
            restarts = str(worker.get("restarts", 0))
            if worker.get("last_restart"):
                restarts += f" ({worker['last_restart']})"
            state = worker.get("state", "?")
            jobs = worker.get("jobs") or []
            if worker.get("concurrency", 1) > 1:  # how many of its slots are busy
                state += f" {len(jobs)}/{worker['concurrency']}"
            state += " (retiring)" if worker.get("retiring") else ""
            _row(
                workers, node["node"], str(worker.get("slot")), str(worker.get("pid")), state,
                worker.get("job_id") or "", _with_progress(worker),
                _span(worker.get("running_for")) if worker.get("running_for") is not None
                else "", str(worker.get("jobs_done", 0)), str(worker.get("jobs_failed", 0)),
                restarts, f"{worker.get('rss', 0) / 1048576:.0f}",
                f"{worker.get('cpu_percent', 0.0):.0f}")
            for job in jobs[1:]:  # one row per further job in flight (the first is above)
                _row(workers, "", "", "", "", job.get("job_id") or "", _with_progress(job),
                     _span(job.get("running_for")), "", "", "", "", "")
    queues = Table(title="queues", title_justify="left")
    queues.add_column("queue")
    for column in ("waiting", "running", "scheduled", "dead", "jobs/s (1 min)"):
        queues.add_column(column, justify="right")
    queues.add_column("")
    for row in doc["queues"]:
        _row(queues, row["queue"], str(row["waiting"]), str(row["running"]),
             str(row["scheduled"]), str(row["dead"]), f"{row['jobs_per_second']:.2f}",
             "  ".join(part for part in ("paused" if row.get("paused") else "",
                                         f"{row['chords']} chords open" if row.get("chords")
                                         else "", workflows_text(row)) if part))
    parts: list[Any] = [nodes, workers, queues]
    if not doc["nodes"]:
        parts.insert(0, Text("no node has published its state (is a master running?)",
                             style="yellow"))
    refusing = (doc.get("redis") or {}).get("refusing_writes")
    if refusing:  # first: the nodes' snapshots below are as old as the refusal
        parts.insert(0, Text(printable(refusing), style="bold red"))
    return Group(*parts)


def _document(client: Any, url: str) -> dict[str, Any]:
    from supervisor.api.statusview import status_document

    return status_document(client, url)


@app.command()
@user_errors
def status(
    as_json: AsJson = False,
    watch: Annotated[bool, typer.Option("--watch", "-w",
                                        help="Refresh until Ctrl-C (with --json: one JSON "
                                             "document per line).")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2,
                                            help="Seconds between refreshes.")] = 2.0,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """Nodes (alive, stale or dead), their workers, and the queues.

    Example: supervisor status --watch
    """
    client, url = connected(redis_url, redis_password_file)
    if not watch:
        doc = _document(client, url)
        if as_json:
            emit_json(doc)
        else:
            _console().print(render_status(doc))
        return
    try:
        if as_json:
            while True:
                typer.echo(json.dumps(_document(client, url), sort_keys=True, default=str))
                time.sleep(interval)
        from rich.live import Live

        with Live(render_status(_document(client, url)), auto_refresh=False,
                  screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(render_status(_document(client, url)), refresh=True)
    except KeyboardInterrupt:
        pass


def _describe(event: dict[str, Any]) -> str:
    kind = event["event"]
    where = f" on {event['node']} pid {event['pid']}" if event.get("node") else ""
    error = (f": {event.get('exc_type')}: {event.get('message')}"
             if event.get("exc_type") else "")
    took = f" after {_span(event['duration'])}" if event.get("duration") is not None else ""
    if kind == "enqueued":
        return f"enqueued by {event.get('host') or 'an unknown host'}"
    if kind == "started":
        return f"attempt {event['attempt']} started{where}"
    if kind == "running":
        return f"attempt {event['attempt']} running{where}"
    if kind == "retry":
        return f"attempt {event['attempt']} failed{took}{error}; retry scheduled"
    if kind == "due":
        return f"attempt {event['attempt']} due"
    if kind == "given back":
        return (f"attempt {event['attempt']} given back{where}: {event.get('message')}; "
                "offered again for a worker that knows the task")
    if kind == "interrupted":
        return f"attempt {event['attempt']} interrupted{took}{where}: {event.get('message')}"
    if kind == "waited for limit":
        what = "a rate limit's turn" if event.get("reason") == "rate" else "a concurrency slot"
        return (f"attempt {event['attempt']} waited in Redis for {what} of "
                f"{event.get('limit')}{where}")
    if kind == "worker died":
        return f"attempt {event['attempt']}: {event.get('message')}; back in the queue"
    if kind in ("succeeded", "failed") and "attempt" in event:
        return f"attempt {event['attempt']} {kind}{took}{error}"
    if kind == "succeeded":
        return f"final state: succeeded, result {json.dumps(event.get('result'))}"
    if kind == "failed":
        return f"final state: failed ({event.get('reason')}){error}"
    if kind == "cancelled" and "attempt" in event:
        return f"attempt {event['attempt']} stopped by its cancel{took}{where}"
    by = f" by {event['by']}" if event.get("by") else ""
    if kind == "cancelled":
        if event.get("reason") == "expired":
            return "final state: cancelled (expired before it started)"
        return f"final state: cancelled{by}"
    if kind == "cancel requested":
        return f"cancel requested{by}"
    return str(kind)


def _with_progress(job: dict[str, Any]) -> str:
    """A running job's task, with its latest progress if it reported any."""
    progress = job.get("progress")
    task = str(job.get("task") or "")
    return f"{task} ({_progress_text(progress)})" if isinstance(progress, dict) else task


def _progress_text(progress: dict[str, Any]) -> str:
    """A fraction 0-1 as a percentage, anything else as JSON; meta after it."""
    value = progress.get("value")
    shown = (f"{value * 100:.0f}%" if isinstance(value, (int, float))
             and not isinstance(value, bool) and 0 <= value <= 1 else json.dumps(value))
    meta = progress.get("meta")
    return shown if meta is None else f"{shown} {json.dumps(meta)}"


@app.command()
@user_errors
def job(
    job_id: Annotated[str, typer.Argument(help="The id printed by enqueue.")],
    queue: JobQueue = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """A job's timeline: enqueued, each attempt (node, pid, start, end, outcome, error),
    retries, final state. Kept as long as the job's record (the result TTL). The id of
    a whole workflow (a handle's workflow_id, a group's id) shows its tree with each
    member's state.

    Example: supervisor job 3f2a...
    """
    from supervisor.api.jobview import job_document
    from supervisor.api.workflowview import tree_lines

    doc = job_document(_client(redis_url, redis_password_file), job_id, queue)
    if as_json:
        emit_json(doc)
        return
    if doc.get("kind") == "workflow":
        console = _console()
        for line in tree_lines(doc["workflow"], job_id):
            console.print(Text(printable(line)))
        return
    record_task, queue, state, events = doc["task"], doc["queue"], doc["state"], doc["events"]
    console = _console()
    console.print(Text.assemble(
        printable(f"job {job_id}  task {record_task}  queue {queue}  state "),
        (printable(state), "bold")))
    if doc["headers"]:
        console.print(printable("headers  " + "  ".join(
            f"{name}={value}" for name, value in sorted(doc["headers"].items()))))
    if doc.get("args") is not None:
        import json

        console.print(Text(printable(f"args {json.dumps(doc['args'])}  kwargs "
                                     f"{json.dumps(doc['kwargs'])}")))
    elif doc.get("args_preview"):
        console.print(Text(printable(f"arguments (truncated: the first "
                                     f"{len(doc['args_preview'])} of {doc['args_chars']} "
                                     f"characters) {doc['args_preview']}")))
    progress = doc.get("progress")
    if progress is not None:
        console.print(Text(printable(f"progress: {_progress_text(progress)}  (reported "
                                     f"{_stamp(progress.get('at'))})")))
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("time")
    table.add_column("event")
    for event in events:
        _row(table, _stamp(event.get("at")), _describe(event))
    console.print(table)
    if doc.get("workflow"):
        for line in tree_lines(doc["workflow"], job_id):
            console.print(Text(printable(line)))
