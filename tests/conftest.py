"""Shared test fixtures: settings, data paths, and real Redis/PostgreSQL servers.

Servers come from ``TRADEWIND_TEST_REDIS_URL`` / ``TRADEWIND_TEST_POSTGRES_URL``;
without them a throwaway server is started from local binaries; without those
the test is skipped with the reason, unless ``TRADEWIND_REQUIRE_SERVICES=1``
(set by CI), which turns every such skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tradewind.bus import Bus, MemoryBus
from tradewind.clock import Clock, ReplayClock
from tradewind.config import Settings, load_settings
from tradewind.exchanges.instruments import load_instruments
from tradewind.services.base import ServiceContext

ROOT = Path(__file__).resolve().parent.parent
MARKET_DATA = Path(os.environ.get("TRADEWIND_MARKET_DATA", ROOT / "tests" / "data" / "market"))
"""The recordings the tests replay (sources and licences in its ``SOURCES.md``):
in the repository, so a plain clone runs every test that needs them."""
REQUIRE = os.environ.get("TRADEWIND_REQUIRE_SERVICES") == "1"


@contextlib.asynccontextmanager
async def spawned(*args: str, **kwargs: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A subprocess (``asyncio.create_subprocess_exec`` arguments) killed and
    reaped on the way out if it is still running, so no failing test leaves one."""
    proc = await asyncio.create_subprocess_exec(*args, **kwargs)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def skip_or_fail(reason: str) -> None:
    """Skip, or fail when CI requires every external dependency."""
    if REQUIRE:
        pytest.fail(f"required by TRADEWIND_REQUIRE_SERVICES=1: {reason}")
    pytest.skip(reason)


def market_file(name: str) -> Path:
    path = MARKET_DATA / name
    if not path.exists():
        skip_or_fail(f"recorded market data not found: {path}")
    return path


def service_context(
    settings: Settings, bus: Bus | None = None, clock: Clock | None = None, **kw: Any
) -> ServiceContext:
    """A service's context for a test: an in-process bus and an event-time clock
    unless given, the bundled instruments; ``kw`` sets the rest (store, durable_state…)."""
    return ServiceContext(
        bus=bus if bus is not None else MemoryBus(),
        clock=clock if clock is not None else ReplayClock(),
        settings=settings,
        instruments=load_instruments(),
        **kw,
    )


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings for a test: embedded defaults, a fresh SQLite file, overrides merged."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"store": {"url": f"sqlite:///{tmp_path / 'tw.db'}"}}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return load_settings(**base)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class RedisProcess:
    """A redis-server of our own on a free loopback port, in ``directory``: for
    the session when no Redis is configured, and for tests that must stop,
    restart or reconfigure the server (AOF reloads, replicas)."""

    def __init__(self, directory: Path, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("no redis-server binary: install redis-server")
        assert binary is not None
        self.binary = binary
        self.directory = directory
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, wait: bool = True) -> None:
        """Start (again, on the same port and data); ``wait``: until it accepts connections."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait and not _wait_port(self.port):
            skip_or_fail("throwaway redis-server did not start")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: Redis flushes its AOF and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A Redis URL: the configured server, or a throwaway one."""
    url = os.environ.get("TRADEWIND_TEST_REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server") is None:
        skip_or_fail("no Redis: set TRADEWIND_TEST_REDIS_URL or install redis-server")
    with tempfile.TemporaryDirectory() as d:
        server = RedisProcess(Path(d))
        server.start()
        try:
            yield server.url
        finally:
            server.stop(10)


class AclRedis:
    """A throwaway Redis whose users are those ``tradewind acl`` generates for
    one prefix: the default user is off, each service has its own user."""

    def __init__(self, port: int, prefix: str, passwords: dict[str, str]) -> None:
        from tradewind.acl import user_name
        from tradewind.bus.redis import with_credentials

        self.port = port
        self.prefix = prefix
        self.passwords = passwords
        base = f"redis://127.0.0.1:{port}/0"
        self.base_url = base
        self.urls = {u: with_credentials(base, user_name(u), pw) for u, pw in passwords.items()}
        self.admin_url = self.urls["admin"]

    def env(self, user: str, tmp: Path) -> dict[str, str]:
        """A service's bus credentials as deployed: user name, password file."""
        from tradewind.acl import user_name

        path = tmp / f"redis_{user}_password"
        path.write_text(self.passwords[user] + "\n")
        return {
            "TRADEWIND_BUS__REDIS_URL": self.base_url,
            "TRADEWIND_BUS__USERNAME": user_name(user),
            "TRADEWIND_BUS__PASSWORD_FILE": str(path),
        }


@pytest.fixture
def acl_redis(redis_prefix: str, tmp_path: Path) -> Iterator[AclRedis]:
    """A Redis of its own for one test, its ACL file generated from the topic table."""
    import secrets

    from tradewind.acl import USERS, acl_file

    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("no redis-server binary for a Redis with ACL users")
    assert binary is not None
    passwords = {u: secrets.token_urlsafe(32) for u in USERS}
    d = tmp_path / "acl-redis"
    d.mkdir()
    (d / "users.acl").write_text(acl_file(redis_prefix, passwords))
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [binary, *args, "--dir", str(d), "--aclfile", str(d / "users.acl")],
        stdout=(d / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        if not _wait_port(port):
            pytest.fail(
                f"redis-server with the ACL file did not start: {(d / 'redis.log').read_text()}"
            )
        yield AclRedis(port, redis_prefix, passwords)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    return redis_server


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests can share one Redis."""
    return f"twtest-{uuid.uuid4().hex[:10]}"


def _pg_binaries() -> Path | None:
    for candidate in [
        shutil.which("initdb"),
        *sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")),
    ]:
        if candidate:
            return Path(candidate).parent
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL URL of a server we may create databases on."""
    url = os.environ.get("TRADEWIND_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as d, throwaway_postgres(Path(d)) as url:
        yield url


@contextlib.contextmanager
def throwaway_postgres(d: Path, initdb_args: Sequence[str] = (), **config: str) -> Iterator[str]:
    """A PostgreSQL cluster of our own in directory ``d`` (``initdb_args``:
    more initdb options, ``config``: server settings), stopped on exit; its
    URL names the ``postgres`` database."""
    bindir = _pg_binaries()
    if bindir is None:
        skip_or_fail("no PostgreSQL: set TRADEWIND_TEST_POSTGRES_URL or install postgresql")
    assert bindir is not None
    port = free_port()
    data = d / "data"
    user = "postgres"
    env = dict(os.environ)
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(d, "postgres") if _has_user("postgres") else None
        run_as = ["runuser", "-u", "postgres", "--"] if _has_user("postgres") else []
        if not run_as:
            skip_or_fail("cannot run a throwaway PostgreSQL as root without a postgres user")
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", *initdb_args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    settings = [
        f"{k}={v}" for k, v in {"listen_addresses": "127.0.0.1", "fsync": "off", **config}.items()
    ]
    proc = subprocess.Popen(
        [
            *run_as,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(d),
            *(a for kv in settings for a in ("-c", kv)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        if not _wait_port(port, 30):
            skip_or_fail("throwaway PostgreSQL did not start")
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(20)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import asyncio

    import asyncpg

    name = f"twtest_{uuid.uuid4().hex[:12]}"
    base = postgres_server

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A CLI test configures structlog with the stream it was given (CliRunner's,
    closed afterwards); later tests must not log into that closed stream."""
    yield
    import structlog

    structlog.reset_defaults()
