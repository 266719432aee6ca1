"""`supervisor run` reads its options without typer's coercion (cli_run.parse_fast),
from the typer command's own declarations, and leaves to typer what it cannot read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from supervisor.cli import run as cli_run
from supervisor.cli.run import parse_fast


def test_every_option_of_the_typer_command_is_read() -> None:
    options = parse_fast([
        "-w", "3", "--tasks", "a.b,c", "-Q", "q1,q2", "--config=/x.toml", "--node-name", "n",
        "--graceful-timeout", "1.5", "--max-jobs-per-child", "10",
        "--max-memory-per-child", "200", "--heartbeat-timeout", "4", "--max-crashes", "5",
        "--cancel-grace", "2.5", "--concurrency", "16", "--pidfile", "/p", "--log-level",
        "debug", "--log-format",
        "json", "--log-file", "/l",
        "--metrics-port", "9100", "--metrics-bind", "0.0.0.0", "--redis-url", "redis://h/1",
        "--redis-password-file", "/pw", "--redis-ca-file", "/ca", "--redis-cert-file", "/c",
        "--redis-key-file", "/k", "--middleware", "m.hooks:Db", "--namespace", "app",
        "--wait-replicas", "1", "--wait-timeout", "0.5",
    ])
    assert options == {
        "workers": 3, "tasks": "a.b,c", "queues": "q1,q2", "config": "/x.toml",
        "node_name": "n", "graceful_timeout": 1.5, "max_jobs_per_child": 10,
        "max_memory_per_child": 200, "heartbeat_timeout": 4.0, "max_crashes": 5,
        "cancel_grace": 2.5, "concurrency": 16, "pidfile": "/p", "log_level": "debug",
        "log_format": "json",
        "log_file": "/l",
        "metrics_port": 9100, "metrics_bind": "0.0.0.0", "redis_url": "redis://h/1",
        "redis_password_file": "/pw", "redis_ca_file": "/ca", "redis_cert_file": "/c",
        "redis_key_file": "/k", "middleware": "m.hooks:Db",
        "namespace": "app", "wait_replicas": 1, "wait_timeout": 0.5,
    }


def test_options_not_given_are_none_and_the_url_comes_from_its_envvar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPERVISOR_REDIS_URL", "redis://from-env/0")
    options = parse_fast(["--workers", "2"])
    assert options is not None
    assert options["redis_url"] == "redis://from-env/0"
    assert {k for k, v in options.items() if v is not None} == {"workers", "redis_url"}


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["--workers", "two"], ["--workers"], ["--bogus", "1"], ["extra"],
    ["--work", "2"],  # no abbreviations: click has none either
    ["--workers", "2", "--", "x"],
])
def test_what_only_typer_should_answer_is_left_to_it(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def test_run_fast_returns_to_typer_when_it_cannot_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, object]] = []
    monkeypatch.setattr(cli_run, "start", lambda **options: started.append(options))
    cli_run.run_fast(["--help"])  # returns: typer will print the help
    assert started == []
    with pytest.raises(SystemExit) as leaving:
        cli_run.run_fast(["--workers", "2", "--tasks", "t"])
    assert leaving.value.code == 0
    assert started and started[0]["workers"] == 2 and started[0]["tasks"] == "t"


def test_the_master_process_does_not_load_typers_coercion_or_rich() -> None:
    # What `supervisor run` imports before it forks is in every child's memory.
    probe = (
        "import sys\n"
        "from supervisor.cli import run as cli_run\n"
        "cli_run.start = lambda **options: print(sorted(sys.modules))\n"
        "sys.argv = ['supervisor', 'run', '--workers', '1', '--tasks', 'x']\n"
        "from supervisor.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = done.stdout
    assert "'supervisor.cli.run'" in loaded
    for heavy in ("'pydantic'", "'rich'", "'supervisor.cli.status'", "'typer._adapters'"):
        assert heavy not in loaded, heavy
