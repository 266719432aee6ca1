"""Redis URLs in the configuration: ambiguous passwords refused, a separate password and
TLS files merged in, unknown URL parameters named; no message ever shows the secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from supervisor.config import load_config
from supervisor.errors import ConfigError
from supervisor.redis_url import describe, where

SECRET = "p@ss/w%rd"


@pytest.mark.parametrize("url", [
    "redis://:p@ss@127.0.0.1:6379/0",  # '@' not encoded
    "redis://app:p@ss@127.0.0.1:6379/0",
    "redis://:pa/ss@127.0.0.1:6379/0",  # '/' not encoded: the host would be 'pa'
    "redis://:pa?ss@127.0.0.1:6379/0",
    "redis://:50%off@127.0.0.1:6379/0",  # '%' not encoded
])
def test_an_ambiguous_password_is_refused_with_the_way_to_encode_it(url: str) -> None:
    for source in ({"cli": {"redis_url": url}}, {"env": {"SUPERVISOR_REDIS_URL": url}}):
        with pytest.raises(ConfigError) as caught:
            load_config(source.get("cli"), env=source.get("env", {}))
        message = str(caught.value)
        assert "--redis-url" in message and "%40" in message and "%2F" in message
        assert "--redis-password-file" in message
        password = url.split("://", 1)[1].split(":", 1)[1].rsplit("@", 1)[0]
        assert password not in message and "ss@" not in message, message


def test_encoded_passwords_pass() -> None:
    config = load_config({"redis_url": "redis://app:p%40ss%2Fw%25rd@10.0.0.1:6380/2"}, env={})
    kwargs = redis.ConnectionPool.from_url(config.redis_url).connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["host"], kwargs["db"]) == \
        ("app", SECRET, "10.0.0.1", 2)


def test_the_password_from_a_file_or_the_environment_is_merged_encoded(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    from_file = load_config({"redis_url": "redis://app@10.0.0.1:6380/2",
                             "redis_password_file": str(secret)}, env={})
    from_env = load_config({}, env={"SUPERVISOR_REDIS_URL": "redis://10.0.0.1:6380/2",
                                    "SUPERVISOR_REDIS_PASSWORD": SECRET})
    via_env_file = load_config({}, env={"SUPERVISOR_REDIS_PASSWORD_FILE": str(secret)})
    for config, user in ((from_file, "app"), (from_env, None), (via_env_file, None)):
        kwargs = redis.ConnectionPool.from_url(config.redis_url).connection_kwargs
        assert kwargs["password"] == SECRET
        assert kwargs.get("username") == user
        assert SECRET not in repr(config)
        assert "***" in describe(config.redis_url) and "%40" not in describe(config.redis_url)
    unix = load_config({"redis_url": "unix:///run/redis.sock?db=3",
                        "redis_password_file": str(secret)}, env={})
    kwargs = redis.ConnectionPool.from_url(unix.redis_url).connection_kwargs
    assert (kwargs["password"], kwargs["path"], kwargs["db"]) == (SECRET, "/run/redis.sock", 3)
    assert SECRET not in describe(unix.redis_url) and "password" not in describe(unix.redis_url)


def test_the_password_file_comes_from_the_config_file_too(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET)
    toml = tmp_path / "supervisor.toml"
    toml.write_text(f'redis-url = "redis://h:1/0"\nredis-password-file = "{secret}"\n')
    config = load_config({"config_file": str(toml)}, env={})
    assert redis.ConnectionPool.from_url(config.redis_url).connection_kwargs["password"] == SECRET


@pytest.mark.parametrize(("options", "fragment"), [
    ({"redis_password_file": "/nonexistent/pw"}, "no such file"),
    ({"redis_url": "redis://:x@h/0", "redis_password": "y"}, "has a password already"),
    ({"redis_url": "embedded://", "redis_password": "y"}, "embedded"),
    ({"redis_ca_file": __file__}, "rediss://"),
    ({"redis_url": "rediss://h/0", "redis_cert_file": __file__}, "go together"),
    ({"redis_url": "rediss://h/0", "redis_ca_file": "/nonexistent/ca.pem"}, "--redis-ca-file"),
])
def test_inconsistent_connection_settings_are_refused(options: dict[str, str],
                                                      fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(options, env={})


def test_tls_files_become_connection_settings(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-")
    config = load_config({"redis_url": "rediss://:pw@h:6380/1"}, env={
        "SUPERVISOR_REDIS_CA_FILE": str(tmp_path / "ca.pem"),
        "SUPERVISOR_REDIS_CERT_FILE": str(tmp_path / "cert.pem"),
        "SUPERVISOR_REDIS_KEY_FILE": str(tmp_path / "key.pem")})
    pool = redis.ConnectionPool.from_url(config.redis_url)
    assert pool.connection_class is redis.SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == \
        tuple(str(tmp_path / name) for name in ("ca.pem", "cert.pem", "key.pem"))
    assert describe(config.redis_url) == "rediss://:***@h:6380/1"


def test_an_unknown_url_parameter_is_named_not_a_type_error() -> None:
    with pytest.raises(ConfigError, match="unknown URL parameter 'ssl_ca_cert'; did you mean "
                                          "'ssl_ca_certs'.*--redis-ca-file"):
        load_config({"redis_url": "rediss://h:6380/0?ssl_ca_cert=/ca.pem"}, env={})
    config = load_config({"redis_url": "redis://h/0?socket_keepalive=true&health_check_"
                                       "interval=5"}, env={})
    assert "health_check_interval" in config.redis_url


def test_where_names_user_server_and_database() -> None:
    assert str(where("redis://app:pw@10.0.0.1:6380/2")) == "user 'app' at 10.0.0.1:6380, database 2"
    assert str(where("redis://127.0.0.1:6379")) == "user 'default' at 127.0.0.1:6379, database 0"
    assert str(where("unix:///run/r.sock?db=4&password=x")) == \
        "user 'default' at unix socket /run/r.sock, database 4"
