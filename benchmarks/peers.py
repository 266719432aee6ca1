"""Per-family virtualenvs for the peers (and tools), created on demand.

Each family gets benchmarks/.venv-peers/<family>/ so one peer that cannot be
installed never stops the others. Versions are pinned by
requirements-peers.txt, used as pip constraints. Ours never comes here: it
runs from the project's own .venv.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_ROOT = HERE / ".venv-peers"
PINS = HERE / "requirements-peers.txt"
INSTALL_TIMEOUT = 900.0
REPORTED = ("celery", "kombu", "gevent", "rq", "dramatiq", "huey", "arq", "taskiq",
            "taskiq-redis", "saq", "redis", "hiredis", "py-spy")


class PeerUnavailable(Exception):
    """A family's virtualenv could not be made; the message says why, in one line."""


def ours_bin() -> Path:
    """The project's virtualenv (where ours runs), else this interpreter's."""
    venv = ROOT / ".venv" / "bin"
    return venv if (venv / "python").exists() else Path(sys.executable).parent


def _stamp(requirements: tuple[str, ...]) -> str:
    digest = hashlib.sha256(PINS.read_bytes())
    digest.update("\n".join(requirements).encode())
    return digest.hexdigest()


def _run(argv: list[str], log: Path, timeout: float) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"`{argv[2]}` timed out after {timeout:.0f}s; "
                                  f"see {log}") from None
    if done.returncode != 0:
        tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
        raise PeerUnavailable(f"install failed ({' '.join(tail)[:160]}); see {log}")


def ensure(family: str, requirements: tuple[str, ...]) -> Path:
    """The bin dir of the family's virtualenv, installing it first if needed."""
    venv = VENV_ROOT / family
    stamp = venv / ".bench-installed"
    wanted = _stamp(requirements)
    if stamp.exists() and stamp.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv / "bin"
    venv.mkdir(parents=True, exist_ok=True)
    log = venv / "install.log"
    log.write_text("")
    print(f"[bench] installing {family} into {venv} ...", file=sys.stderr, flush=True)
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], log, 120)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", "-c", str(PINS), *requirements], log, INSTALL_TIMEOUT)
    stamp.write_text(wanted)
    return venv / "bin"


def versions(bin_dir: Path) -> dict[str, str]:
    """Versions of the packages worth reporting in that virtualenv.

    `pip list` takes about a second; its answer is kept next to the install stamp
    and reused until the virtualenv is installed again.
    """
    stamp, cache = bin_dir.parent / ".bench-installed", bin_dir.parent / ".bench-versions.json"
    installed = stamp.read_text() if stamp.exists() else None
    if installed is not None and cache.exists():
        try:
            kept = json.loads(cache.read_text())
            if kept.get("stamp") == installed:
                return dict(kept["versions"])
        except (ValueError, KeyError, TypeError):
            pass
    found = _pip_versions(bin_dir)
    if installed is not None and found:
        cache.write_text(json.dumps({"stamp": installed, "versions": found}))
    return found


def _pip_versions(bin_dir: Path) -> dict[str, str]:
    try:
        listing = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format",
                                  "json", "--disable-pip-version-check"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return {}
    return {item["name"].lower(): item["version"] for item in json.loads(listing)
            if item["name"].lower() in REPORTED}
