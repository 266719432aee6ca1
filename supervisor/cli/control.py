"""CLI commands of control over jobs and queues: cancel, queues (list, pause, resume)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from supervisor import errors
from supervisor.cli.app import (
    HELP_OPTIONS,
    AsJson,
    RedisPasswordFile,
    RedisUrl,
    app,
    connected,
    emit_json,
    fail,
    user_errors,
)
from supervisor.cli.status import workflows_text
from supervisor.cli.text import printable

queues_app = typer.Typer(
    help="Per queue: waiting, running (delivered, not acknowledged), scheduled, dead, and "
         "whether it is paused; `pause`/`resume` a queue.\n\nExample: supervisor queues --json",
    invoke_without_command=True,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(queues_app, name="queues")

By = Annotated[str | None, typer.Option("--by", help="Who asks (kept in the record) "
                                                     "[default: user@host].")]


def _client(redis_url: str | None, redis_password_file: str | None) -> Any:
    return connected(redis_url, redis_password_file)[0]


@queues_app.callback()
@user_errors
def queues(ctx: typer.Context, as_json: AsJson = False, redis_url: RedisUrl = None,
           redis_password_file: RedisPasswordFile = None) -> None:
    """Per queue: waiting, running, scheduled, dead, paused."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (redis_url, redis_password_file)
        return
    from supervisor.broker import control
    from supervisor.broker.inspect import known_queues, queue_stats

    client = _client(redis_url, redis_password_file)
    names = known_queues(client)
    stats = [queue_stats(client, name) for name in names]
    paused = control.paused(client, names)
    if as_json:
        emit_json([{**item.as_dict(), "paused": item.queue in paused,
                    **({"paused_by": paused[item.queue]} if item.queue in paused else {})}
                   for item in stats])
        return
    typer.echo(f"{'queue':20} {'waiting':>8} {'running':>8} {'scheduled':>10} {'dead':>8}  "
               "paused")
    for item in stats:
        flag = "  ".join(part for part in ("paused" if item.queue in paused else "",
                                           f"{item.chords} chords open" if item.chords
                                           else "", workflows_text(item.as_dict())) if part)
        typer.echo(f"{printable(item.queue):20} {item.waiting:>8} {item.running:>8} "
                   f"{item.scheduled:>10} {item.dead:>8}  {flag}".rstrip())
        for name, counts in item.limited.items():  # who waits for a limit, per task
            typer.echo(f"  {printable(name)}: {counts['rate']} waiting for a rate turn, "
                       f"{counts['concurrency']} for a concurrency slot, "
                       f"{counts['slots_held']} slots held")


def _options(ctx: typer.Context, redis_url: str | None,
             redis_password_file: str | None) -> tuple[str | None, str | None]:
    parent = ctx.obj or (None, None)
    return redis_url or parent[0], redis_password_file or parent[1]


@queues_app.command("pause")
@user_errors
def pause(ctx: typer.Context, queue: Annotated[str, typer.Argument(help="The queue.")],
          by: By = None, redis_url: RedisUrl = None,
          redis_password_file: RedisPasswordFile = None) -> None:
    """Stop workers on every node taking jobs of QUEUE (within about a second).

    Running jobs finish; producers can still enqueue; delayed jobs become due but wait.

    Example: supervisor queues pause reports
    """
    from supervisor.api import control

    control.pause(queue, by=by, client=_client(*_options(ctx, redis_url, redis_password_file)))
    typer.echo(f"queue {printable(queue)} paused")


@queues_app.command("resume")
@user_errors
def resume(ctx: typer.Context, queue: Annotated[str, typer.Argument(help="The queue.")],
           redis_url: RedisUrl = None, redis_password_file: RedisPasswordFile = None) -> None:
    """Let workers take jobs of QUEUE again.

    Example: supervisor queues resume reports
    """
    from supervisor.api import control

    if control.resume(queue, client=_client(*_options(ctx, redis_url, redis_password_file))):
        typer.echo(f"queue {printable(queue)} resumed")
    else:
        typer.echo(f"queue {printable(queue)} was not paused")


@app.command()
@user_errors
def cancel(
    job_ids: Annotated[list[str] | None, typer.Argument(help="Ids of the jobs to cancel.")]
    = None,
    task: Annotated[str | None, typer.Option(
        "--task", help="Cancel every job of this task not ended yet.")] = None,
    queue: Annotated[str | None, typer.Option(
        "--queue", "-q", help="Cancel every job of this queue not ended yet (with --task: "
                              "only that task's).")] = None,
    wait: Annotated[float | None, typer.Option(
        "--wait", metavar="S", help="Wait up to S seconds for the running ones to stop.")]
    = None,
    by: By = None,
    as_json: AsJson = False,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
) -> None:
    """Cancel jobs: a queued, scheduled or retrying job never starts; a running one gets
    JobCancelled raised inside it (killed after --cancel-grace if it ignores it); an ended
    one is left as it is (its final state is shown).

    Exit code 4 if a job is unknown, 7 if --wait ran out before they all stopped.

    Example: supervisor cancel 3f2a... 9b1c... --wait 10
    """
    from supervisor.api import control

    if not job_ids and task is None and queue is None:
        raise fail("give job ids, --task or --queue", errors.EXIT_USAGE)
    if job_ids and (task is not None or queue is not None):
        raise fail("give job ids or --task/--queue, not both", errors.EXIT_USAGE)
    client = _client(redis_url, redis_password_file)
    if job_ids:
        replies = control.cancel(job_ids, by=by, client=client)
    else:
        replies = control.cancel_many(queue=queue, task=task, by=by, client=client)
    states: dict[str, str] = {}
    running = [reply.job_id for reply in replies if reply.what == "running"]
    if wait is not None and running:
        states = control.wait_ended(running, wait, client=client)
    rows = []
    for reply in replies:
        shown = {"cancelled": "cancelled", "unknown": "unknown: no such job",
                 "ended": f"already ended: {reply.state}",
                 "running": "running: asked to stop"}[reply.what]
        if reply.job_id in states:
            shown = f"running: now {states[reply.job_id]}"
        rows.append({"id": reply.job_id, "queue": reply.queue, "result": reply.what,
                     "state": states.get(reply.job_id) or reply.state, "shown": shown})
    if as_json:
        emit_json([{k: v for k, v in row.items() if k != "shown"} for row in rows])
    else:
        for row in rows:
            typer.echo(f"{printable(str(row['id']))}: {printable(str(row['shown']))}")
        if not rows:
            typer.echo("no jobs to cancel")
    if any(reply.what == "unknown" for reply in replies):
        raise typer.Exit(errors.EXIT_NOT_FOUND)
    if wait is not None and any(state not in ("cancelled", "succeeded", "failed")
                                for state in states.values()):
        raise typer.Exit(errors.EXIT_TIMEOUT)
