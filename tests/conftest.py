"""What the suite needs from the machine: a PostgreSQL and a Redis server, and chromium.

Each server is the one at 127.0.0.1 on its usual port when it answers; otherwise the session
starts a throwaway server from the installed binaries (pytest-postgresql's and pytest-redis's
executors) in a temporary directory, and stops and removes it at the end. A test that needs a
server that cannot be had, or a browser test on a machine without chromium, is skipped with a
one-line reason, except under ``CI=true``, where it fails: CI must run every test.

Environment variables (for a developer, and to test this file's own fallbacks):

- ``FINMLSEC_TEST_PG_PORT`` (default 5432), ``FINMLSEC_TEST_REDIS_PORT`` (default 6379): the
  port tried first on 127.0.0.1; a port where nothing listens makes the session start its own;
- ``FINMLSEC_TEST_CHROMIUM``: the chromium executable to drive (a path that does not exist
  behaves as a machine without chromium).
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
PG_DB = "test"


def core_install() -> bool:
    """The extras are missing (a venv with the core only) or hidden (tests/lean/_hide.py)."""
    return (os.environ.get("FINMLSEC_TEST_HIDE_EXTRAS") == "1"
            or importlib.util.find_spec("sqlalchemy") is None)


# tests/lean/ is the core install's suite; with the extras importable it would repeat the
# defences' contract tests, so there it runs through tests/test_packaging.py (extras hidden).
collect_ignore = [] if core_install() else ["lean"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or fail it under CI, where every test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: every test must run)", pytrace=False)
    pytest.skip(reason)


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise pytest.UsageError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


# --- browser ------------------------------------------------------------------------------------

def find_chromium() -> str | None:
    chosen = os.environ.get("FINMLSEC_TEST_CHROMIUM")
    if chosen is not None:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Headless, no sandbox (CI runs as root), nothing fetched in the background.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium_browser() -> Iterator[Any]:
    """A Playwright browser on the system's chromium (Playwright downloads no browser here)."""
    path = find_chromium()
    if path is None:
        unavailable("no chromium installed (.ci/run installs Debian's)")
    if importlib.util.find_spec("playwright") is None:
        unavailable("playwright is not installed (extra 'test')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --- PostgreSQL -----------------------------------------------------------------------------------

def pg_login(port: int) -> str | None:
    """The role that reaches database ``test`` on 127.0.0.1:port without a password, if any."""
    if not listening(port):
        return None
    import psycopg

    for user in dict.fromkeys(("postgres", pwd.getpwuid(os.getuid()).pw_name)):
        try:
            psycopg.connect(host=HOST, port=port, dbname=PG_DB, user=user, connect_timeout=3).close()
            return user
        except psycopg.OperationalError:
            continue
    return None


def find_pg_ctl() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return found[-1] if found else shutil.which("pg_ctl")


def pg_ctl_as_server_account(pg_ctl: str, workdir: Path) -> str:
    """PostgreSQL refuses to run as root: as root, a pg_ctl that runs as the postgres account."""
    if os.geteuid() != 0:
        return pg_ctl
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("PostgreSQL cannot run as root and there is no 'postgres' account")
        raise
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("PostgreSQL cannot run as root and runuser is not installed")
    os.chown(workdir, account.pw_uid, account.pw_gid)
    wrapper = workdir / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\nexec {runuser} -u postgres -- {pg_ctl} "$@"\n')
    wrapper.chmod(stat.S_IRWXU)
    return str(wrapper)


@contextlib.contextmanager
def throwaway_postgres(pg_ctl: str) -> Iterator[str]:
    import port_for
    import psycopg
    from pytest_postgresql.executors import PostgreSQLExecutor

    workdir = Path(tempfile.mkdtemp(prefix="finmlsec-pg-"))
    executable = pg_ctl_as_server_account(pg_ctl, workdir)
    port = port_for.select_random()
    server = PostgreSQLExecutor(
        executable=executable, host=HOST, port=port, datadir=str(workdir / "data"),
        unixsocketdir=str(workdir), logfile=str(workdir / "server.log"), startparams="-w",
        user="postgres", dbname=PG_DB, options="", postgres_options="-c fsync=off")
    try:
        server.start()
        # pg_ctl -w returns once the postmaster answers, which can be before it accepts
        # logins ("the database system is starting up"): retry for up to 30 s
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(host=HOST, port=port, dbname="postgres", user="postgres",
                                     autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {PG_DB}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@{HOST}:{port}/{PG_DB}"
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of database ``test`` on a PostgreSQL server that answers. Tests share it:
    each keeps to its own table prefix or schema and drops it after."""
    port = env_port("FINMLSEC_TEST_PG_PORT", 5432)
    user = pg_login(port)
    if user is not None:
        yield f"postgresql+psycopg://{user}@{HOST}:{port}/{PG_DB}"
        return
    if importlib.util.find_spec("psycopg") is None:
        unavailable("psycopg is not installed (extra 'postgres')")
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        unavailable(f"no PostgreSQL answers on {HOST}:{port} and pg_ctl is not installed")
    assert pg_ctl is not None
    with throwaway_postgres(pg_ctl) as url:
        yield url


# --- Redis ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def throwaway_redis(redis_server: str) -> Iterator[str]:
    import port_for
    from pytest_redis.executor import RedisExecutor

    workdir = Path(tempfile.mkdtemp(prefix="finmlsec-redis-"))
    port = port_for.select_random()
    server = RedisExecutor(redis_server, databases=4, redis_timeout=30, loglevel="warning",
                           host=HOST, port=port, datadir=workdir)
    try:
        server.start()
        yield f"redis://{HOST}:{port}/0"
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A URL of a Redis server that answers. Tests share it: each keeps to its own key prefix."""
    if importlib.util.find_spec("redis") is None:
        unavailable("the redis client is not installed (extra 'redis')")
    import redis

    port = env_port("FINMLSEC_TEST_REDIS_PORT", 6379)
    url = f"redis://{HOST}:{port}/0"
    if listening(port):
        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
            if client.ping():
                yield url
                return
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        unavailable(f"no Redis answers on {HOST}:{port} and redis-server is not installed")
    assert redis_server is not None
    with throwaway_redis(redis_server) as throwaway:
        yield throwaway
