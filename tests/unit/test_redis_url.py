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


# --- Sentinel and Cluster URLs ------------------------------------------------


def test_sentinel_url_is_taken_apart() -> None:
    from supervisor.redis_url import complaint, deployment, describe, where

    url = "redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2/mymaster/2?sentinel_password=x"
    assert complaint(url) is None
    found = deployment(url)
    assert found.kind == "sentinel" and not found.tls
    assert found.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (found.master_name, found.db, found.username, found.password) == \
        ("mymaster", 2, "app", "s@cret")
    assert "s%40cret" not in describe(url) and "s@cret" not in str(where(url))
    assert str(where(url)) == ("user 'app' at master 'mymaster' of sentinels "
                               "10.0.0.1:26379,10.0.0.2:26379, database 2")


def test_celery_sentinel_url_is_read_as_redis_sentinel() -> None:
    from supervisor.redis_url import normalize

    assert normalize("sentinel://:pw@h1:26379;sentinel://h2:26380/3?master_name=mm") == \
        "redis+sentinel://:pw@h1:26379,h2:26380/mm/3"
    assert normalize("redis://h:1/0") == "redis://h:1/0"


def test_cluster_url_is_taken_apart() -> None:
    from supervisor.redis_url import complaint, deployment, kind

    url = "rediss+cluster://seed1:7000,seed2:7001"
    assert complaint(url) is None and kind(url) == "cluster"
    found = deployment(url)
    assert found.tls and found.hosts == (("seed1", 7000), ("seed2", 7001)) and found.db == 0


@pytest.mark.parametrize(("url", "said"), [
    ("redis+sentinel://h1:26379,h2:26379", "master's name is missing"),
    ("redis+sentinel://h1:port/m", "not a number"),
    ("redis+sentinel://h1/m/0/extra", "path must be"),
    ("redis+sentinel://h1/m?bogus=1", "unknown URL parameter 'bogus'"),
    ("redis+cluster://h1:7000/3", "database 0 only"),
    ("redis+cluster://,h2:7000", "host is missing"),
    ("sentinel://h1:26379;redis://h2", "Celery-style"),
])
def test_bad_sentinel_and_cluster_urls_are_refused_with_the_reason(url: str, said: str) -> None:
    from supervisor.redis_url import complaint

    found = complaint(url)
    assert found is not None and said in found


def test_the_config_reads_sentinel_urls_and_tls_files_with_them(tmp_path: Path) -> None:
    from supervisor.config import load_config
    from supervisor.errors import ConfigError

    config = load_config({"redis_url": "sentinel://h1:26379;sentinel://h2?master_name=m"})
    assert config.redis_url == "redis+sentinel://h1:26379,h2/m"
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    tls = load_config({"redis_url": "rediss+sentinel://h1/m", "redis_ca_file": str(ca)})
    assert "ssl_ca_certs=" in tls.redis_url
    with pytest.raises(ConfigError, match="TLS"):
        load_config({"redis_url": "redis+cluster://h1:7000", "redis_ca_file": str(ca)})


def test_the_async_producer_gets_a_sentinel_or_cluster_client_for_those_urls() -> None:
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import SentinelConnectionPool

    from supervisor.broker.async_sentinel import AsyncMasterConnection
    from supervisor.broker.async_streams import AsyncBroker
    from supervisor.broker.connection import connect_async
    from supervisor.errors import ConfigError

    # Nothing is connected here: the clients connect on their first command.
    sentinel = connect_async("redis+sentinel://127.0.0.1:1,127.0.0.1:2/main")
    pool = sentinel.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "main"
    assert pool.connection_class is AsyncMasterConnection  # checks ROLE on connect
    cluster = connect_async("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    assert isinstance(cluster, RedisCluster)
    with pytest.raises(ConfigError, match="--wait-replicas is not supported by the async "
                                          "producer on a Redis Cluster yet"):
        AsyncBroker(cluster, wait_replicas=1)


@pytest.mark.parametrize(("given", "taken"), [
    ("redis+sentinel://:pw@h1:26379,h2:26379/mymaster/2",
     "redis+sentinel://:pw@h1:26379,h2:26379/mymaster/2"),
    ("sentinel://h1:26379;sentinel://h2:26379?master_name=mymaster",
     "redis+sentinel://h1:26379,h2:26379/mymaster"),
    ("rediss+cluster://u:pw@seed1:7000,seed2:7001",
     "rediss+cluster://u:pw@seed1:7000,seed2:7001"),
])
def test_every_place_a_url_is_given_takes_the_sentinel_and_cluster_forms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, taken: str) -> None:
    from supervisor.api import producer, session

    toml = tmp_path / "supervisor.toml"
    toml.write_text(f'redis-url = "{given}"\n')
    assert load_config({"config_file": str(toml)}, env={}).redis_url == taken
    assert load_config({}, env={"SUPERVISOR_REDIS_URL": given}).redis_url == taken
    assert load_config({"redis_url": given}, env={}).redis_url == taken  # the CLI's flag
    monkeypatch.setattr(session, "overrides", {})
    producer.configure(redis_url=given)
    assert session.settings().redis_url == taken
