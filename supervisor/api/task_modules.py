"""The modules that define tasks: naming a task after its importable module, and
importing the --tasks modules of a worker (which registers their tasks).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from supervisor.errors import TaskImportError


def module_name(fn: Callable[..., Any]) -> str:
    """The module a worker imports to find `fn`: its own, or for a script run as
    `python script.py` (module `__main__`) the script's importable name, as Celery
    names the main module. ValueError (saying what to do) when there is none."""
    if fn.__module__ != "__main__":
        return fn.__module__
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", ""):  # python -m package.module
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if path:
        found = _importable_as(Path(path).resolve())
        if found:
            return found
    where = f"the script {path}" if path else "code that is no module (python -c, a REPL)"
    raise ValueError(
        f"task {fn.__qualname__} is defined in {where}, which no worker can import under "
        "that name; define it in a module (e.g. jobs.py, imported by your script and given "
        "to workers with --tasks jobs), or name it: @task(name='jobs."
        f"{fn.__qualname__}') in a module the workers import")


def _importable_as(path: Path) -> str | None:
    """The dotted name under which `path` imports from sys.path, if it does."""
    for entry in sys.path:
        base = Path(entry or ".").resolve()
        try:
            parts = path.with_suffix("").relative_to(base).parts
        except ValueError:
            continue
        if path.suffix == ".py" and parts and all(part.isidentifier() for part in parts):
            name = ".".join(parts)
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                continue
            if spec is not None and spec.origin and Path(spec.origin).resolve() == path:
                return name
    return None


def import_task_modules(modules: Sequence[str]) -> None:
    """Import the --tasks modules the way `python -m` would: cwd on the path."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
            raise TaskImportError(
                f"cannot import task module {module!r}: {type(exc).__name__}: {exc}"
            ) from exc
