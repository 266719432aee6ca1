"""The hooks' dispatch (core/middleware.py) and their registration (api/middleware.py)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from supervisor.api import middleware as registration
from supervisor.config import load_config
from supervisor.core import middleware as hook
from supervisor.core.job import Job, decode
from supervisor.core.middleware import AttemptInfo, Hooks, Middleware, load
from supervisor.errors import ConfigError, InvalidMessage


class Recorder(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def before_attempt(self, attempt: AttemptInfo) -> None:
        self.calls.append(f"{self.name}.before")

    def after_attempt(self, attempt: AttemptInfo) -> None:
        self.calls.append(f"{self.name}.after:{attempt.outcome}")

    def on_retry(self, attempt: AttemptInfo) -> None:
        self.calls.append(f"{self.name}.retry:{attempt.retry_in:.0f}")

    def on_dead_letter(self, attempt: AttemptInfo) -> None:
        self.calls.append(f"{self.name}.dead")


class Boom(Middleware):
    def before_attempt(self, attempt: AttemptInfo) -> None:
        raise RuntimeError("boom")

    def after_attempt(self, attempt: AttemptInfo) -> None:
        raise SystemExit(3)  # not even this leaves the worker


def job(**changes: Any) -> Job:
    return Job(id="j1", task="t.add", queue="default", args=(1, 2), **changes)


def test_no_middleware_means_no_calls_at_all() -> None:
    hooks = Hooks([Middleware()])  # the base class hooks nothing
    assert not hooks.attempts
    assert all(getattr(hooks, point) == () for point in hook.HOOK_POINTS)
    assert not hook.NO_HOOKS and hook.NO_HOOKS.before_enqueue == ()


def test_before_points_in_order_after_points_in_reverse() -> None:
    calls: list[str] = []
    hooks = Hooks([Recorder("a", calls), Recorder("b", calls)])
    info = hooks.attempt_begins(job(), "w")
    hooks.attempt_failed(info, ValueError("x"), 1000.0, 1_005_000)  # due 5 s after the end
    assert calls == ["a.before", "b.before", "b.after:retry", "a.after:retry",
                     "b.retry:5", "a.retry:5"]
    calls.clear()
    info = hooks.attempt_begins(job(attempt=3), "w")
    hooks.attempt_failed(info, ValueError("x"), info.started, 0)
    assert calls[-2:] == ["b.dead", "a.dead"] and info.outcome == hook.FAILED


def test_a_hook_that_raises_is_logged_with_its_name_and_the_next_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    hooks = Hooks([Boom(), Recorder("r", calls)])
    with caplog.at_level(logging.ERROR, "supervisor.hooks"):
        info = hooks.attempt_begins(job(headers={"k": "v"}), "w")
        hooks.attempt_ends(info, hook.SUCCEEDED, None, info.started)
    assert calls == ["r.before", "r.after:succeeded"]
    names = [record.getMessage() for record in caplog.records]
    assert names == [f"hook {__name__}.Boom.before_attempt raised; ignored (the job goes on)",
                     f"hook {__name__}.Boom.after_attempt raised; ignored (the job goes on)"]
    assert caplog.records[0].job_id == "j1"  # type: ignore[attr-defined]
    assert info.headers == {"k": "v"} and info.fields()["headers"] == {"k": "v"}


def test_duck_typed_middleware_and_threads() -> None:
    seen: list[int] = []

    class Plain:  # no base class: any object with hook methods will do
        def before_attempt(self, attempt: AttemptInfo) -> None:
            attempt.state["n"] = attempt.attempt  # per-attempt state: no lock needed

        def after_attempt(self, attempt: AttemptInfo) -> None:
            seen.append(attempt.state["n"])

    hooks = Hooks([Plain()])

    def run(number: int) -> None:
        for _ in range(200):
            info = hooks.attempt_begins(job(attempt=number), "w")
            hooks.attempt_ends(info, hook.SUCCEEDED, None, 0.0)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted([n for n in range(1, 5) for _ in range(200)])


def test_load_names_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mw_sample.py").write_text(
        "from supervisor import Middleware\n"
        "class Good(Middleware):\n"
        "    def before_attempt(self, attempt): pass\n"
        "class Needy(Middleware):\n"
        "    def __init__(self, x): pass\n"
        "class Nothing: pass\n"
        "ready = Good()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(load("mw_sample:Good")).__name__ == "Good"
    assert load("mw_sample:ready") is sys.modules["mw_sample"].ready
    for spec, problem in [("mw_sample", "is not package.module:Class"),
                          ("mw-sample:Good", "not Python names"),
                          ("nowhere_at_all:Good", "cannot import nowhere_at_all"),
                          ("mw_sample:Missing", "has no Missing"),
                          ("mw_sample:Needy", r"Needy\(\) failed"),
                          ("mw_sample:Nothing", "defines none of the hook points")]:
        with pytest.raises(ValueError, match=problem):
            load(spec)


def test_names_come_from_every_source_and_code_registered_ones_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text('middleware = ["a.b:C"]\n')
    assert load_config({"config_file": str(config_file)}, env={}).middleware == ("a.b:C",)
    assert load_config({}, env={"SUPERVISOR_MIDDLEWARE": "x:Y, z:W"}).middleware == \
        ("x:Y", "z:W")
    with pytest.raises(ConfigError, match="--middleware.*'oops' is not package.module:Class"):
        load_config({"middleware": "oops"}, env={})

    (tmp_path / "mw_order.py").write_text(
        "from supervisor import Middleware\n"
        "class Named(Middleware):\n"
        "    def before_attempt(self, attempt): attempt.state.setdefault('o', []).append('n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class InCode(Middleware):
        def before_attempt(self, attempt: AttemptInfo) -> None:
            attempt.state.setdefault("o", []).append("c")

    registration.use([InCode()])
    try:
        hooks = registration.hooks_for(load_config({"middleware": "mw_order:Named"}, env={}))
        assert hooks is registration.hooks_for(load_config({"middleware": "mw_order:Named"},
                                                           env={})), "cached per process"
        assert hooks.attempt_begins(job(), "w").state["o"] == ["n", "c"]
        with pytest.raises(ConfigError, match="is a class: pass an instance"):
            registration.use([InCode])
        with pytest.raises(ConfigError, match="cannot import nowhere"):
            registration.hooks_for(load_config({"middleware": "nowhere:X"}, env={}))
    finally:
        registration.use([])
    assert registration.hooks_for(load_config({}, env={})) is hook.NO_HOOKS


def test_headers_travel_in_the_message_and_are_checked() -> None:
    plain = job()
    assert '"hd"' not in plain.encode(), "no bytes for a job without headers"
    carried = job(headers={"traceparent": "00-abc-def-01"})
    back = decode(carried.encode())
    assert back.headers == {"traceparent": "00-abc-def-01"}
    assert back.next_attempt({}).headers == back.headers, "every retry carries them"
    assert back.after_crash().headers == back.headers
    for bad in ('{"x": 1}', '["x"]', '{"": "v"}'):
        text = carried.encode().replace('{"traceparent":"00-abc-def-01"}', bad)
        with pytest.raises(InvalidMessage, match="header"):
            decode(text)


def test_the_masters_reload_hook_loads_afresh_and_survives_a_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    from supervisor.master.hooks import run_reload_hooks

    source = ("from supervisor import Middleware\n"
              "seen = []\n"
              "class Deploy(Middleware):\n"
              "    def on_reload(self, reload):\n"
              "        seen.append(('{v}', reload.generation, reload.previous_generation,"
              " reload.workers))\n")
    (tmp_path / "mw_reload.py").write_text(source.format(v="v1"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    config = load_config({"middleware": "nowhere_here:X,mw_reload:Deploy", "workers": 3},
                         env={})
    with caplog.at_level(logging.ERROR, "supervisor.master"):
        run_reload_hooks(config, 2, 1)
    assert sys.modules["mw_reload"].seen == [("v1", 2, 1, 3)]
    assert "middleware nowhere_here:X not loaded" in caplog.text

    (tmp_path / "mw_reload.py").write_text(source.format(v="v2"))  # a deploy changed it
    run_reload_hooks(config, 3, 2)
    assert sys.modules["mw_reload"].seen == [("v2", 3, 2, 3)], "imported afresh"
    run_reload_hooks(load_config({}, env={}), 4, 3)  # none named: nothing imported or run
