"""Run the real master with a fake child target: `python fake_master.py TARGET JSON_OPTIONS`.

JSON_OPTIONS are the CLI values (fixed across reloads); the environment and
the config file are re-read on every SIGHUP, as under `supervisor run`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import master_targets  # noqa: E402

from supervisor.config import load_config  # noqa: E402
from supervisor.master.serve import run_master  # noqa: E402

if __name__ == "__main__":
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR2)
    target = getattr(master_targets, sys.argv[1])
    cli = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run_master(lambda: load_config(cli), target=target))
