"""Configuration: precedence CLI > env > file > defaults, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import Config, load_config, replace
from supervisor.errors import ConfigError


def test_defaults() -> None:
    config = load_config({}, env={})
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.queues == ("default",)
    assert config.workers >= 1


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    file = tmp_path / "supervisor.toml"
    file.write_text('workers = 3\nqueues = ["a", "b"]\ngraceful-timeout = 12\n'
                    '[[schedule]]\ntask = "x"\nevery = 60\n')
    env = {"SUPERVISOR_CONFIG": str(file), "SUPERVISOR_WORKERS": "5"}
    config = load_config({"graceful_timeout": 7}, env=env)
    assert config.workers == 5  # env beats file
    assert config.queues == ("a", "b")  # file beats default
    assert config.graceful_timeout == 7.0  # CLI beats file
    assert load_config({"workers": 9}, env=env).workers == 9


@pytest.mark.parametrize(
    ("cli", "env", "fragment"),
    [
        ({"workers": "many"}, {}, "--workers (from option --workers)"),
        ({"workers": 0}, {}, "must be at least 1"),
        ({}, {"SUPERVISOR_WORKERS": "x"}, "environment SUPERVISOR_WORKERS"),
        ({"redis_url": "http://x"}, {}, "must start with redis://"),
        ({"log_format": "xml"}, {}, "must be one of text, json"),
        ({"queues": ""}, {}, "must not be empty"),
    ],
)
def test_invalid_values_name_the_option(cli: dict[str, object], env: dict[str, str],
                                        fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_config(cli, env=env)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"config_file": str(tmp_path / "missing.toml")}, env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config({"config_file": str(bad)}, env={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("wokers = 2\n")
    with pytest.raises(ConfigError, match="unknown option 'wokers'"):
        load_config({"config_file": str(unknown)}, env={})


def test_replace_validates() -> None:
    assert replace(Config(), workers=2).workers == 2
    with pytest.raises(ConfigError):
        replace(Config(), workers=-1)


def test_invalid_schedules_are_refused_when_the_config_is_loaded(tmp_path: Path) -> None:
    file = tmp_path / "supervisor.toml"
    file.write_text('[[schedule]]\ntask = "tasks.examples.add"\ncron = "61 * * * *"\n')
    entry = r"\[\[schedule\]\] entry 1 \(task 'tasks.examples.add'\)"
    with pytest.raises(ConfigError, match=entry):
        load_config({"config_file": str(file)}, env={})
