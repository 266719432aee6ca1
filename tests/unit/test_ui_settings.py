"""The dashboard's safety rules: binding, the token, base paths, redirect targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("starlette")  # the ui extra; `make test` installs it

from supervisor.broker import scripts  # noqa: E402
from supervisor.broker.recent import RECENT_MAX  # noqa: E402
from supervisor.errors import ConfigError  # noqa: E402
from supervisor.ui.common import safe_next  # noqa: E402
from supervisor.ui.settings import (  # noqa: E402
    UiSettings,
    check_binding,
    is_loopback,
    normal_base_path,
    read_token,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_binding(UiSettings(redis_url="redis://x", bind=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "dashboard.example"])
def test_beyond_loopback_needs_a_token_or_insecure(host: str) -> None:
    with pytest.raises(ConfigError, match="--token-file"):
        check_binding(UiSettings(redis_url="redis://x", bind=host))
    check_binding(UiSettings(redis_url="redis://x", bind=host, token="long-enough"))
    check_binding(UiSettings(redis_url="redis://x", bind=host, insecure=True))


def test_token_from_file_option_or_neither(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  from-the-file \nsecond line ignored\n")
    assert read_token(None, str(path)) == "from-the-file"
    assert read_token("on-the-command-line", None) == "on-the-command-line"
    assert read_token(None, None) is None
    with pytest.raises(ConfigError, match="not both"):
        read_token("on-the-command-line", str(path))
    with pytest.raises(ConfigError, match="at least 8"):
        read_token("short", None)
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(None, str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(None, str(tmp_path / "empty"))


@pytest.mark.parametrize(("given", "expected"), [
    (None, ""), ("", ""), ("/", ""), ("/sv", "/sv"), ("sv/", "/sv"), ("/a/b/", "/a/b")])
def test_base_path(given: str | None, expected: str) -> None:
    assert normal_base_path(given) == expected


@pytest.mark.parametrize("bad", ["/a b", "/a?x", "//evil", "/a\"b"])
def test_bad_base_path(bad: str) -> None:
    with pytest.raises(ConfigError):
        normal_base_path(bad)


@pytest.mark.parametrize(("target", "base", "expected"), [
    ("/dead?queue=x", "", "/dead?queue=x"), ("//evil.example/", "", "/"),
    ("https://evil.example/", "", "/"), (None, "", "/"), ("/\\evil", "", "/"),
    ("/sv/jobs", "/sv", "/sv/jobs"), ("/jobs", "/sv", "/sv/")])
def test_redirects_stay_on_the_dashboard(target: str | None, base: str, expected: str) -> None:
    assert safe_next(target, base) == expected


@pytest.mark.parametrize("script", ["settle", "cancel"])
def test_the_scripts_trim_the_index_to_recent_max(script: str) -> None:
    found = re.search(r"local RECENT_MAX = (\d+)", scripts.source(script))
    assert found is not None and int(found.group(1)) == RECENT_MAX
