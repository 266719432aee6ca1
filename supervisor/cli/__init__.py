"""The `supervisor` command line.

`app.py` holds the typer app and what every command shares (options, error
handling); each other module is one command group and registers its
commands on the app. `main()` imports them: nothing here imports a command
module at import time, so `supervisor run` takes its fast path first.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["run"]:  # the master: keep typer's parsing out of what it forks
        from supervisor.cli.run import run_fast

        run_fast(sys.argv[2:])  # returns only when typer must answer (help, errors)
    # Importing the command modules registers their commands.
    from supervisor.cli import (  # noqa: F401
        control,
        dead,
        jobs,
        reload,
        run,
        schedules,
        status,
        ui,
        worker,
    )
    from supervisor.cli.app import app

    app(prog_name="supervisor")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
