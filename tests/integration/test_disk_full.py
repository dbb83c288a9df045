"""db_writer on a full disk: it stops acknowledging, says so in its readiness
and ``tradewind_db_full``, and resumes by itself when space returns, with
every event stored once.

A throwaway PostgreSQL cluster keeps its market partitions in a tablespace on
a 16 MB tmpfs (its WAL and catalogs stay on the ordinary disk, as on a
server whose data volume fills up while the server itself keeps running). A
filler table takes the rest of the tmpfs; dropping it is "space returns".
Mounting needs root: elsewhere the test is skipped and says why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.bus_contract import trade
from tests.conftest import _pg_binaries, service_context, throwaway_postgres
from tradewind.bus.memory import MemoryBus
from tradewind.clock import WallClock
from tradewind.events import Event, Trade
from tradewind.observability import metrics
from tradewind.services.db_writer import DbWriterService
from tradewind.storage import migrate
from tradewind.storage.postgres import PostgresStore
from tradewind.topics import ORDERS

pytestmark = pytest.mark.postgres


@pytest.fixture
def tiny_cluster() -> Iterator[tuple[str, Path]]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a 16 MB tmpfs needs root and mount(8)")
    with tempfile.TemporaryDirectory() as d:
        tiny = Path(d) / "tiny"
        tiny.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(tiny)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        try:
            shutil.chown(tiny, "postgres", "postgres")
            with throwaway_postgres(Path(d)) as url:
                asyncio.run(_accepting(url))
                yield url, tiny
        finally:
            subprocess.run(["umount", "-l", str(tiny)], check=False)


async def _accepting(url: str, timeout: float = 30.0) -> None:
    """The port opens before the server takes connections ("starting up")."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError, OSError):
            # also a connection closed while the server shuts down or restarts
            assert time.monotonic() < deadline, "throwaway PostgreSQL never accepted connections"
            await asyncio.sleep(0.1)
            continue
        await conn.close()
        return


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _now_trade(i: int) -> Trade:
    t = trade(i)
    return Trade(
        id=t.id,
        ts_event=time.time_ns(),
        exchange=t.exchange,
        symbol=t.symbol,
        price=t.price,
        qty=t.qty,
        side=t.side,
        trade_id=t.trade_id,
        ts_recv=t.ts_recv,
    )


async def _fill_up(conn: asyncpg.Connection) -> None:
    """Fill the tablespace to the last page: big inserts, then smaller ones."""
    await conn.execute("CREATE TABLE filler (x text) TABLESPACE tiny")
    for rows in (20_000, 1000, 20, 1):
        for _ in range(10_000):
            try:
                await conn.execute(
                    f"INSERT INTO filler SELECT md5(random()::text) || md5(random()::text) "
                    f"FROM generate_series(1, {rows})"
                )
            except asyncpg.DiskFullError:
                break


async def test_db_writer_holds_batches_while_full_and_resumes_alone(
    tiny_cluster: tuple[str, Path], make_settings: Any
) -> None:
    admin_url, tiny = tiny_cluster
    url = admin_url.rsplit("/", 1)[0] + "/tw"
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute(f"CREATE TABLESPACE tiny LOCATION '{tiny}'")
        await admin.execute("CREATE DATABASE tw")
    finally:
        await admin.close()
    await asyncio.to_thread(migrate.upgrade, url)
    conn = await asyncpg.connect(url, timeout=10)
    await conn.execute("ALTER DATABASE tw SET default_tablespace = tiny")
    await conn.close()

    store = PostgresStore(url, retry_max_s=5.0)
    await store.start()  # today's partitions: on the tmpfs
    bus = MemoryBus()
    settings = make_settings(store={"url": url, "maintenance_interval_s": 3600})
    svc = DbWriterService(service_context(settings, bus=bus, clock=WallClock(), store=store))
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await _fill_up(conn)
        await svc.start()
        events: list[Event] = [_now_trade(i) for i in range(3000)]
        await bus.publish(ORDERS, events)

        async def full() -> bool:
            return svc.full

        await until(full)
        ok, why = svc.ready()
        assert not ok
        assert "database full" in why
        assert metrics.DB_FULL._value.get() == 1
        await asyncio.sleep(1.0)  # still held: nothing written, nothing acknowledged
        assert await conn.fetchval("SELECT count(*) FROM trades") == 0
        info = (await bus.info())[ORDERS].groups["db_writer"]
        assert info.pending + info.lag == len(events)

        await conn.execute("DROP TABLE filler")  # space returns

        async def stored() -> bool:
            return await conn.fetchval("SELECT count(*) FROM trades") == len(events)

        await until(stored)

        async def acked() -> bool:
            g = (await bus.info())[ORDERS].groups["db_writer"]
            return g.pending + g.lag == 0 and not svc.full

        await until(acked)
        assert svc.ready() == (True, "ok")
        assert metrics.DB_FULL._value.get() == 0
        assert await conn.fetchval("SELECT count(DISTINCT id) FROM trades") == len(events)
    finally:
        await svc.stop()
        await conn.close()
        await store.close()


WAL_SETTINGS = {"min_wal_size": "2MB", "max_wal_size": "4MB"}


def _postmaster(data: Path, port: int, socket_dir: Path) -> subprocess.Popen[bytes]:
    """The server again on its data directory, as an orchestrator restarts a
    stopped container (``restart: unless-stopped``, a pod's restartPolicy)."""
    bindir = _pg_binaries()
    assert bindir is not None
    settings = {"listen_addresses": "127.0.0.1", "fsync": "off", **WAL_SETTINGS}
    return subprocess.Popen(
        ["runuser", "-u", "postgres", "--", str(bindir / "postgres"), "-D", str(data),
         "-p", str(port), "-k", str(socket_dir),
         *(a for k, v in settings.items() for a in ("-c", f"{k}={v}"))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    shutil.chown(path, "postgres", "postgres")


async def _refused(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError):
        return True
    await conn.close()
    return False


async def test_db_writer_holds_through_a_full_wal_volume_and_resumes_after_restart(
    make_settings: Any,
) -> None:
    """pg_wal on a 16 MB tmpfs, kept by a replication slot: db_writer's COPY
    needs a new WAL segment, a backend PANICs, recovery cannot write its
    checkpoint and the server shuts down. db_writer holds the batch (nothing
    acked, nothing failed; full or unavailable, by what its connections
    heard); the volume grows and the server is started again; everything is
    stored once."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        shutil.chown(d, "postgres", "postgres")
        wal = d / "wal"
        _mount_tmpfs(wal, "16m")
        restarted: subprocess.Popen[bytes] | None = None
        try:
            initdb = ("--waldir", str(wal / "pg_wal"), "--wal-segsize", "1")
            with throwaway_postgres(d, initdb, **WAL_SETTINGS) as url:
                await _accepting(url)
                restarted = await _fill_wal_and_hold(url, wal, d, make_settings)
        finally:
            if restarted is not None:
                restarted.terminate()
                restarted.wait(20)
            await asyncio.to_thread(subprocess.run, ["umount", "-l", str(wal)], check=False)


async def _fill_wal_and_hold(
    url: str, wal: Path, d: Path, make_settings: Any
) -> subprocess.Popen[bytes]:
    admin = await asyncpg.connect(url, timeout=10)
    try:
        await admin.execute("SELECT pg_create_physical_replication_slot('keep', true)")
        await admin.execute("CREATE TABLE filler (x text)")
        while shutil.disk_usage(wal).free > 3 * 2**20:
            await admin.execute(
                "INSERT INTO filler SELECT md5(random()::text) FROM generate_series(1, 2000)"
            )
    finally:
        await admin.close()
    await asyncio.to_thread(migrate.upgrade, url)
    store = PostgresStore(url, retry_max_s=1.0)
    await store.start()
    bus = MemoryBus()
    settings = make_settings(store={"url": url, "maintenance_interval_s": 3600})
    svc = DbWriterService(service_context(settings, bus=bus, clock=WallClock(), store=store))
    events: list[Event] = [_now_trade(i) for i in range(60_000)]  # ≈ 10 MB of WAL
    server: subprocess.Popen[bytes] | None = None
    failed_before = metrics.EVENTS_FAILED.labels("db_writer", ORDERS)._value.get()
    try:
        await svc.start()
        await bus.publish(ORDERS, events)

        async def held() -> bool:
            return not svc.ready()[0] and await _refused(url)

        await until(held, timeout=60)
        # Full when our own connection carried the PANIC (most runs); when it
        # struck another backend, or the socket closed before its message
        # came, db_writer only sees an outage: it holds all the same.
        ok, why = svc.ready()
        assert not ok
        assert why in (
            "database full: writes held, nothing acknowledged",
            "database unavailable: writes held, nothing acknowledged",
        )
        assert metrics.DB_FULL._value.get() == (1 if svc.full else 0)
        await asyncio.sleep(2.0)  # still held while the server is down
        info = (await bus.info())[ORDERS].groups["db_writer"]
        assert info.pending + info.lag > 0
        assert not svc.ready()[0]
        assert metrics.EVENTS_FAILED.labels("db_writer", ORDERS)._value.get() == failed_before

        # Space returns (the volume grows) and the server is started again.
        remount = ["mount", "-o", "remount,size=64m", str(wal)]
        await asyncio.to_thread(subprocess.run, remount, check=True)
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        server = _postmaster(d / "data", port, d)
        await _accepting(url, timeout=60)

        async def acked() -> bool:
            g = (await bus.info())[ORDERS].groups["db_writer"]
            return g.pending + g.lag == 0 and svc.ready()[0]

        await until(acked, timeout=120)
        assert svc.ready() == (True, "ok")
        assert metrics.DB_FULL._value.get() == 0
        conn = await asyncpg.connect(url, timeout=10)
        try:
            assert await conn.fetchval("SELECT count(DISTINCT id) FROM trades") == len(events)
            assert await conn.fetchval("SELECT count(*) FROM trades") == len(events)
        finally:
            await conn.close()
    finally:
        await svc.stop()
        await store.close()
    return server
