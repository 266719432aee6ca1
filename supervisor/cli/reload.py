"""`supervisor reload`: HUP the master and, with --wait, wait for the reload's outcome.

Made for systemd's `ExecReload=` (systemd 252 has no Type=notify-reload):
`systemctl reload` then returns once the new generation serves, and fails
when the reload was refused. The outcome comes from the state file the master
keeps next to its pidfile (reload_state.py); no Redis is involved.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated, Any

import typer

from supervisor import errors
from supervisor.cli.app import app, fail
from supervisor.master.reload_state import read_state, state_path

POLL = 0.1  # seconds between looks at the state file


def _master_pid(pidfile: str) -> int:
    try:
        pid = int(open(pidfile).read().strip())  # noqa: SIM115 - one read
        os.kill(pid, 0)
    except (OSError, ValueError):
        raise fail(f"no master runs with pidfile {pidfile} (is it running, started with "
                   "--pidfile?)", errors.EXIT_NOT_FOUND) from None
    return pid


def _outcome(pidfile: str, pid: int, after: int) -> dict[str, Any] | None:
    state = read_state(pidfile)
    if state and state.get("pid") == pid and int(state.get("seq", 0)) > after \
            and state.get("state") in ("done", "failed"):
        return state
    return None


@app.command()
def reload(
    pidfile: Annotated[str, typer.Option("--pidfile", envvar="SUPERVISOR_PIDFILE",
                                         show_envvar=True,
                                         help="The master's pid file (its --pidfile).")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the outcome; exit 0 once the "
                                       "new generation serves, else the reason's exit code.")]
    = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0,
                                           help="Seconds --wait waits at most.")] = 90.0,
) -> None:
    """Reload the master (SIGHUP): a new generation of workers with the code on disk now.

    With --wait, exit codes say how it went: 0 the new generation serves, 2 the
    configuration was refused, 5 the new code cannot be imported, 8 Redis refused
    the new workers, 7 no outcome within --timeout. A failed reload keeps the old
    generation serving.

    Example (systemd): ExecReload=supervisor reload --wait --pidfile /run/supervisor/supervisor.pid
    """
    pid = _master_pid(pidfile)
    before = read_state(pidfile) if wait else None
    if wait and (before is None or before.get("pid") != pid):
        raise fail(f"the master (pid {pid}) keeps no reload state in {state_path(pidfile)}; "
                   "reload without --wait", errors.EXIT_USAGE)
    after = int(before.get("seq", 0)) if before else 0
    os.kill(pid, signal.SIGHUP)
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while (state := _outcome(pidfile, pid, after)) is None:
        if time.monotonic() > deadline:
            raise fail(f"no reload outcome within {timeout:.0f}s (the new workers may still "
                       "be booting, or waiting for Redis: see the master's log)",
                       errors.EXIT_TIMEOUT)
        try:
            os.kill(pid, 0)
        except OSError:
            raise fail(f"the master (pid {pid}) exited during the reload",
                       errors.EXIT_FAILURE) from None
        time.sleep(POLL)
    if state["state"] == "failed":
        raise fail(f"reload failed: {state.get('reason')}; the running generation keeps "
                   "serving", int(state.get("code") or errors.EXIT_FAILURE))
    typer.echo(f"reloaded: generation {state.get('generation')} is serving")
