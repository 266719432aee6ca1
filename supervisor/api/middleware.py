"""Registering middleware: in code (`configure(middleware=[...])`) or by name (config).

The hooks of a process are its middleware named in the configuration
(`--middleware`, SUPERVISOR_MIDDLEWARE, `middleware = [...]` in the config
file), in that order, then those registered in code, in theirs. Both the
producer and the worker ask `hooks_for(config)`; the answer is cached, so a
name is imported and its class built once per process, and one instance
serves the producer side and the worker side alike.

A worker process `install`s its configuration's names: the producer of that
process (jobs a task enqueues) then runs them too, although its own
configuration (environment, configure()) never saw the `--middleware` flag.
That is what keeps a task's next job in its trace.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from supervisor.config import Config
from supervisor.core.job import check_headers
from supervisor.core.middleware import NO_HOOKS, EnqueueInfo, Hooks, load
from supervisor.core.middleware import log as hook_log
from supervisor.errors import ConfigError

_lock = threading.Lock()
_registered: tuple[object, ...] = ()  # configure(middleware=[...])
_loaded: dict[str, object] = {}  # name -> its instance, built once per process
_cache: dict[tuple[str, ...], Hooks] = {}
_installed: tuple[str, ...] = ()  # the names of this process's worker (install)


def use(middleware: Iterable[object] | None) -> None:
    """Set the middleware registered in code (replacing any set before); `None` or `[]`
    clears it. Items are instances, or `package.module:Class` names."""
    global _registered
    items: list[object] = []
    for item in middleware or ():
        if isinstance(item, str):
            try:
                item = load(item)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        elif isinstance(item, type):
            raise ConfigError(f"middleware {item.__qualname__} is a class: pass an instance "
                              f"({item.__qualname__}()) or its name 'module:Class'")
        items.append(item)
    with _lock:
        _registered = tuple(items)
        _cache.clear()


def registered() -> tuple[object, ...]:
    return _registered


def install(config: Config) -> Hooks:
    """In a worker process: load its middleware and make them this process's producer's too."""
    global _installed
    hooks = hooks_for(config)  # first: a name that does not load raises, installs nothing
    with _lock:
        _installed = config.middleware
        _cache.clear()
    return hooks


def hooks_for(config: Config) -> Hooks:
    """The hooks of this process for `config` (ConfigError naming a middleware that fails
    to load)."""
    found = _cache.get(config.middleware)
    if found is not None:
        return found
    with _lock:
        named = []
        # The worker's names first, then the configuration's own (each once).
        for name in dict.fromkeys((*_installed, *config.middleware)):
            if name not in _loaded:
                try:
                    _loaded[name] = load(name)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
            named.append(_loaded[name])
        every = (*named, *_registered)
        hooks = Hooks(every) if every else NO_HOOKS
        _cache[config.middleware] = hooks
        return hooks


def enqueue_headers(hooks: Hooks, job_id: str, task: str, queue: str, args: tuple[Any, ...],
                    kwargs: dict[str, Any], headers: dict[str, str] | None,
                    due: float = 0.0) -> dict[str, str]:
    """A new job's headers: the caller's (checked: ValueError), then what the
    before_enqueue hooks add. Hooks that leave a bad header are logged and the job
    goes with the caller's headers only: a hook never loses a job."""
    own = dict(check_headers(headers)) if headers else {}
    if not hooks.before_enqueue:
        return own
    info = EnqueueInfo(job_id, task, queue, args, kwargs, own, due)
    hooks.run("before_enqueue", info)
    try:
        return check_headers(info.headers)
    except ValueError as exc:
        hook_log.error("before_enqueue hooks left bad headers on job %s (%s): %s; sending "
                       "the job without them", job_id, task, exc)
        return dict(check_headers(headers)) if headers else {}


def _fresh_lock() -> None:
    # Another thread may have held the lock at the fork; the instances are kept
    # (a child's after_child_boot hook is where they open their own resources).
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock)
