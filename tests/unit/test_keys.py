"""--namespace: every key this process names carries it, the global keys too."""

from __future__ import annotations

import inspect

from supervisor.broker import keys


def test_every_key_takes_the_namespace_the_global_ones_too() -> None:
    try:
        keys.use_namespace("appx")
        constants = {name: value for name, value in vars(keys).items()
                     if name.isupper() and isinstance(value, str) and ":" in value}
        assert constants  # QUEUES, NODESTATES, SCHEDULE_DEFS, ...
        assert all(value.startswith("appx:") for value in constants.values()), constants
        named = 0
        for name, function in inspect.getmembers(keys, inspect.isfunction):
            if name == "use_namespace" or function.__module__ != keys.__name__:
                continue
            params = inspect.signature(function).parameters
            if all(p.annotation in ("str", "int") for p in params.values()):
                made = function(*("7" if p.annotation == "int" else "q"
                                  for p in params.values()))
                for key in made if isinstance(made, tuple) else (made,):
                    if isinstance(key, str) and ":" in key:
                        assert key.startswith("appx:"), (name, key)
                        named += 1
        assert named > 20  # the per-queue keys were all looked at
    finally:
        keys.use_namespace(keys.DEFAULT_NAMESPACE)
    assert keys.SCHEDULE_DEFS == "sv:scheduledefs"
