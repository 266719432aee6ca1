"""One frozen configuration object, built from CLI > environment > TOML file > defaults.

Every option has one entry in `OPTIONS`: its parser, its default and its
check. The CLI, the environment (`SUPERVISOR_<NAME>`) and the config file all
go through the same parser, so a value is refused with the same message
wherever it came from, and the message names the option and its source.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor import redis_url as urls
from supervisor.errors import ConfigError

if TYPE_CHECKING:
    from supervisor.core.schedule import Schedule

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ENV_PREFIX = "SUPERVISOR_"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a master, a worker or a producer needs to know."""

    # The URL to connect to, with the password and TLS files below merged in
    # (load_config): every connection made from the Config carries them.
    redis_url: str = DEFAULT_REDIS_URL
    redis_password: str | None = field(default=None, repr=False)  # env or file only
    redis_password_file: str | None = None  # read at start and on HUP (rotation)
    redis_ca_file: str | None = None  # TLS (rediss://): CA bundle to verify the server
    redis_cert_file: str | None = None  # TLS client certificate ...
    redis_key_file: str | None = None  # ... and its key
    tasks: tuple[str, ...] = ()
    queues: tuple[str, ...] = ("default",)
    # --queues a:6,b:3,c:1: the weights of `queues`, in order; () for a,b,c, a strict
    # order (core/queue_order.py). Set from --queues, never on its own.
    queue_weights: tuple[int, ...] = ()
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    node_name: str = field(default_factory=socket.gethostname)
    graceful_timeout: float = 30.0
    max_jobs_per_child: int = 0  # 0: never recycle for job count
    max_memory_per_child: int = 0  # MB of RSS; 0: no limit
    heartbeat_timeout: float = 10.0
    max_crashes: int = 3
    # Seconds a running job has to stop once JobCancelled was raised in it; then
    # its child kills itself (neighbours are recovered as after any kill).
    cancel_grace: float = 5.0
    pidfile: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    log_file: str | None = None
    result_ttl: int = 86400
    max_payload_bytes: int = 1024 * 1024  # a job message: refused at enqueue and when read
    max_result_bytes: int = 1024 * 1024  # a job's record with its result: larger fails the job
    # Seconds a job of a task its worker does not know is given back, offered
    # again every ~2 s, for a worker that knows it, before it is dead-lettered;
    # 0: dead-lettered at once.
    unknown_task_wait: float = 60.0
    dead_letter_max: int = 100_000
    # Most jobs one fetch may take; the worker adapts below this so it never
    # holds more than ~100 ms of work (see worker.FetchSizer).
    prefetch: int = 64
    # Jobs one child runs at once: sync tasks on that many threads, `async def`
    # tasks on one event loop. 1 (the default): one job at a time, on the main
    # thread, as before; task code need not be thread-safe.
    concurrency: int = 1
    # Prometheus /metrics served by the master; 0: off. Read at start only (not on HUP).
    metrics_port: int = 0
    metrics_bind: str = "127.0.0.1"  # loopback: expose it on purpose, not by accident
    # Hooks by name, `package.module:Class` (core/middleware.py); run in this
    # order, after any registered in code with configure(middleware=[...]).
    middleware: tuple[str, ...] = ()
    config_file: str | None = None
    # WAIT for this many replicas after each enqueue and settle (0: never); a
    # write fewer replicas took within wait_timeout seconds is tried again.
    wait_replicas: int = 0
    wait_timeout: float = 1.0
    # Prefix of every Redis key: applications sharing one Redis (or Cluster)
    # do not see each other's queues, nodes or schedules.
    namespace: str = "sv"


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected an integer")
    if isinstance(raw, int):
        return raw
    return int(str(raw).strip())


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number")
    return float(raw) if isinstance(raw, int | float) else float(str(raw).strip())


def _parse_list(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _parse_str(raw: Any) -> str:
    return str(raw).strip()


def _parse_optional_str(raw: Any) -> str | None:
    text = str(raw).strip()
    return text or None


def parse_queues(items: Sequence[str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(names, weights) of `--queues` items: "a" (strict order) or "a:6" (weighted);
    weights are () for a strict order. ConfigError saying what to write otherwise."""
    names: list[str] = []
    weights: list[int] = []
    for item in items:
        name, colon, weight = item.partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"queue {item!r} has no name: write name or name:weight")
        if name in names:
            raise ConfigError(f"queue {name!r} is listed twice in --queues")
        names.append(name)
        if colon:
            text = weight.strip()
            if not text.isdigit() or int(text) < 1:
                raise ConfigError(f"weight of queue {name!r} must be a whole number of at "
                                  f"least 1, got {text!r} (write e.g. {name}:3)")
            weights.append(int(text))
    if weights and len(weights) != len(names):
        raise ConfigError("--queues gives weights to some queues only: give every queue a "
                          "weight (a:6,b:3,c:1, weighted) or none (a,b,c, strict order)")
    return tuple(names), tuple(weights)


def _queue_items(value: tuple[str, ...]) -> str | None:
    if not value:
        return "must not be empty"
    try:
        parse_queues(value)
    except ConfigError as exc:
        return str(exc)
    return None


def _split_weights(values: dict[str, Any]) -> None:
    """--queues a:6,b:3 -> queues ('a', 'b') and queue_weights (6, 3), in place."""
    if "queues" in values:
        values["queues"], values["queue_weights"] = parse_queues(values["queues"])


@dataclass(frozen=True, slots=True)
class Option:
    parse: Callable[[Any], Any]
    check: Callable[[Any], str | None] = lambda value: None  # returns a complaint or None


def _at_least(minimum: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def _middleware_names(value: tuple[str, ...]) -> str | None:
    from supervisor.core.middleware import check_spec  # pure; loaded only when checked

    problems = [problem for problem in map(check_spec, value) if problem]
    return "; ".join(problems) or None


def _readable_file(value: str | None) -> str | None:
    if value is None or os.access(value, os.R_OK):
        return None
    return "no such file, or not readable" if not os.path.exists(value) else "not readable"


OPTIONS: dict[str, Option] = {
    # Celery's sentinel://h1;sentinel://h2?master_name= is read as redis+sentinel://.
    "redis_url": Option(lambda raw: urls.normalize(_parse_str(raw)), urls.complaint),
    "redis_password": Option(lambda raw: str(raw).rstrip("\r\n")),
    "redis_password_file": Option(_parse_optional_str, _readable_file),
    "redis_ca_file": Option(_parse_optional_str, _readable_file),
    "redis_cert_file": Option(_parse_optional_str, _readable_file),
    "redis_key_file": Option(_parse_optional_str, _readable_file),
    "tasks": Option(_parse_list),
    "queues": Option(_parse_list, _queue_items),
    "workers": Option(_parse_int, _at_least(1)),
    "node_name": Option(_parse_str, _non_empty),
    "graceful_timeout": Option(_parse_float, _at_least(0)),
    "max_jobs_per_child": Option(_parse_int, _at_least(0)),
    "max_memory_per_child": Option(_parse_int, _at_least(0)),
    "heartbeat_timeout": Option(_parse_float, _at_least(1)),
    "max_crashes": Option(_parse_int, _at_least(1)),
    "cancel_grace": Option(_parse_float, _at_least(0)),
    "pidfile": Option(_parse_optional_str),
    "log_level": Option(
        lambda raw: str(raw).strip().upper(),
        _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    ),
    "log_format": Option(lambda raw: str(raw).strip().lower(), _one_of("text", "json")),
    "log_file": Option(_parse_optional_str),
    "result_ttl": Option(_parse_int, _at_least(1)),
    "max_payload_bytes": Option(_parse_int, _at_least(64)),
    "max_result_bytes": Option(_parse_int, _at_least(64)),
    "unknown_task_wait": Option(_parse_float, _at_least(0)),
    "dead_letter_max": Option(_parse_int, _at_least(1)),
    "prefetch": Option(_parse_int, _at_least(1)),
    "concurrency": Option(_parse_int, lambda value: None if 1 <= value <= 1024
                          else "must be between 1 and 1024"),
    "metrics_port": Option(_parse_int, lambda value: None if 0 <= value <= 65535
                           else "must be a TCP port (1-65535), or 0 for off"),
    "metrics_bind": Option(_parse_str, _non_empty),
    "middleware": Option(_parse_list, _middleware_names),
    "config_file": Option(_parse_optional_str),
    "wait_replicas": Option(_parse_int, _at_least(0)),
    "wait_timeout": Option(_parse_float, _at_least(0.001)),
    "namespace": Option(_parse_str, lambda value: None if value and not any(
        c in value for c in "{}: \t") else "must be non-empty, without braces, colons or "
        "spaces (it prefixes every key; the braces are the queues' hash tags)"),
}

# Tables of the config file that other parts read (periodic schedules).
_FILE_SECTIONS = frozenset({"schedule"})


def _option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Values never quoted in a message: a URL may hold a password (complaint()
# explains what is wrong with it without quoting it).
_SECRET = frozenset({"redis_url", "redis_password"})


def _convert(name: str, raw: Any, source: str) -> Any:
    option = OPTIONS[name]
    shown = "" if name in _SECRET else f" {raw!r}"
    try:
        value = option.parse(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"invalid value{shown} for {_option_flag(name)} (from {source})"
        ) from None
    complaint = option.check(value)
    if complaint:
        raise ConfigError(f"invalid value{shown} for {_option_flag(name)} (from {source}): "
                          f"{complaint}")
    return value


def _connection(values: dict[str, Any]) -> None:
    """Merge the separate password and the TLS files into the URL (in place)."""
    url = values.get("redis_url", DEFAULT_REDIS_URL)
    password = values.get("redis_password")
    path = values.get("redis_password_file")
    if path is not None:
        if password is not None:
            raise ConfigError("both --redis-password-file and SUPERVISOR_REDIS_PASSWORD are "
                              "set: give the password once")
        try:
            with open(path, encoding="utf-8") as handle:
                password = handle.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read --redis-password-file {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    tls = urls.Tls(values.get("redis_ca_file"), values.get("redis_cert_file"),
                   values.get("redis_key_file"))
    if password is None and not tls.query():
        return
    if url.startswith("embedded://"):
        raise ConfigError("an embedded:// server takes no password or TLS files")
    if password is not None and urls.has_password(url):
        raise ConfigError(f"{urls.describe(url)} has a password already, and one is given "
                          "apart (--redis-password-file or SUPERVISOR_REDIS_PASSWORD): "
                          "give it once")
    if tls.query() and not url.startswith(urls.TLS_SCHEMES):
        raise ConfigError(f"--redis-ca-file, --redis-cert-file and --redis-key-file are for "
                          f"TLS: use a rediss:// (or rediss+sentinel://, rediss+cluster://) "
                          f"URL, not {urls.describe(url)}")
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError("--redis-cert-file and --redis-key-file go together: give both")
    values["redis_url"] = urls.merge(url, password, tls)


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (check --config)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def read_config_file(path: str) -> dict[str, Any]:
    """Read the TOML file; keys are option names (dashes or underscores)."""
    data = _load_toml(path)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        if name in _FILE_SECTIONS:
            continue
        if name not in OPTIONS or name == "config_file":
            raise ConfigError(f"config file {path}: unknown option {key!r}")
        values[name] = raw
    return values


def read_schedule_file(path: str) -> tuple[list[Schedule], list[str]]:
    """The `[[schedule]]` entries of a TOML config file: (valid schedules, problems).

    Each invalid entry gives one problem line naming it; the others still count.
    A file that cannot be read or parsed raises ConfigError.
    """
    from supervisor.core.schedule import schedules_from_file  # cron parsing: loaded when used

    try:
        data = _load_toml(path)
    except OSError as exc:  # FileNotFoundError is a ConfigError already
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    return schedules_from_file(data, path)


def _check_schedules(path: str) -> None:
    """Refuse invalid [[schedule]] entries at start and on HUP, not later in each worker."""
    _, problems = read_schedule_file(path)
    if problems:
        raise ConfigError("; ".join(problems))


def load_config(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the Config. `cli` holds only options given on the command line.

    Precedence: CLI > environment > config file > defaults. The config file
    itself is named by --config or SUPERVISOR_CONFIG_FILE / SUPERVISOR_CONFIG.
    """
    cli = {key: value for key, value in (cli or {}).items() if value is not None}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}

    config_path = cli.get("config_file") or env.get(ENV_PREFIX + "CONFIG_FILE") or env.get(
        ENV_PREFIX + "CONFIG"
    )
    if config_path:
        for name, raw in read_config_file(str(config_path)).items():
            values[name] = _convert(name, raw, f"config file {config_path}")
        values["config_file"] = str(Path(config_path))
        _check_schedules(str(config_path))
    for name in OPTIONS:
        env_name = ENV_PREFIX + name.upper()
        if name != "config_file" and env_name in env:
            values[name] = _convert(name, env[env_name], f"environment {env_name}")
    for name, raw in cli.items():
        if name not in OPTIONS:
            raise ConfigError(f"unknown option {name!r}")
        values[name] = _convert(name, raw, f"option {_option_flag(name)}")
    _connection(values)
    _split_weights(values)
    return Config(**values)


def replace(config: Config, **changes: Any) -> Config:
    """A copy of `config` with `changes` applied (validated like any input)."""
    checked = {name: _convert(name, raw, "code") for name, raw in changes.items()}
    _split_weights(checked)
    return dataclasses.replace(config, **checked)
