"""The suite's own fallbacks (tests/conftest.py): a browser test without chromium is skipped with
its reason, except under CI=true, where it fails; with nothing answering on the configured ports,
the session starts throwaway PostgreSQL and Redis servers and the tests use them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
MISSING = "/nonexistent/chromium"


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    browser: drives chromium\n")
    for name in ("CI", "FINMLSEC_TEST_CHROMIUM", "FINMLSEC_TEST_PG_PORT",
                 "FINMLSEC_TEST_REDIS_PORT"):
        monkeypatch.delenv(name, raising=False)
    return pytester


BROWSER_TEST = """
def test_needs_a_browser(chromium_browser):
    assert chromium_browser.is_connected()
"""


def test_browser_test_is_skipped_with_its_reason_without_chromium(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMLSEC_TEST_CHROMIUM", MISSING)
    suite.makepyfile(BROWSER_TEST)
    result = suite.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*no chromium installed*"])


@pytest.mark.parametrize("ci", ["true", "1"])
def test_browser_test_fails_without_chromium_under_ci(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("FINMLSEC_TEST_CHROMIUM", MISSING)
    monkeypatch.setenv("CI", ci)
    suite.makepyfile(BROWSER_TEST)
    result = suite.runpytest_subprocess("-rs")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no chromium installed*CI=true: every test must run*"])


SERVERS_TEST = """
import psycopg, redis

def test_servers(pg_url, redis_url):
    port = int(pg_url.rsplit(":", 1)[1].split("/")[0])
    assert port != {pg_port}
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        assert conn.execute("select current_database()").fetchone() == ("test",)
    assert not redis_url.endswith(":{redis_port}/0")
    with redis.Redis.from_url(redis_url) as client:
        assert client.set("k", "v") and client.get("k") == b"v"
"""


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_throwaway_servers_when_none_answers(suite: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pg_port, redis_port = unused_port(), unused_port()
    monkeypatch.setenv("FINMLSEC_TEST_PG_PORT", str(pg_port))
    monkeypatch.setenv("FINMLSEC_TEST_REDIS_PORT", str(redis_port))
    monkeypatch.setenv("CI", "true")  # a server that cannot be had fails this test
    suite.makepyfile(SERVERS_TEST.format(pg_port=pg_port, redis_port=redis_port))
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_a_bad_port_setting_is_a_usage_error(suite: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINMLSEC_TEST_REDIS_PORT", "six")
    suite.makepyfile("def test_redis(redis_url):\n    pass\n")
    result = suite.runpytest_subprocess()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*FINMLSEC_TEST_REDIS_PORT='six' is not a TCP port*"])

