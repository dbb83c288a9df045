"""``tradewind export``: Parquet by day and symbol, typed and exact, from SQLite
and PostgreSQL in bounded chunks; and a backtest replaying such an export
trades exactly as on the recording it came from."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from tests.conftest import market_file
from tradewind.backtest import BacktestSpec, run_backtest
from tradewind.backtest.parquet_source import ParquetReplaySource
from tradewind.cli import app
from tradewind.events import Event, MarketEvent, Quote, Side, Trade
from tradewind.exchanges.replay import ReplaySource
from tradewind.storage import migrate, parquet
from tradewind.storage.base import Store
from tradewind.storage.export import export
from tradewind.storage.postgres import PostgresStore
from tradewind.storage.sqlite import SqliteStore

DAY = 86_400 * 10**9
T0 = 1_764_892_800 * 10**9  # 2025-12-05 00:00 UTC
PRICES = (61837.63, 0.00001234, 3.3, 99999.99999999)


def _events() -> list[Event]:
    out: list[Event] = []
    for i in range(6000):
        sym = ("BTCUSDT", "ETHUSDT")[i % 2]
        ts = T0 + i * (DAY // 3000)  # two days
        out.append(
            Trade(
                id=f"t{i}",
                ts_event=ts,
                exchange="binance",
                symbol=sym,
                price=PRICES[i % len(PRICES)],
                qty=0.001 * (i % 7 + 1),
                side=Side.BUY if i % 3 else Side.SELL,
                trade_id=str(i),
                ts_recv=ts + 5,
            )
        )
        if i % 10 == 0:
            out.append(
                Quote(
                    id=f"q{i}",
                    ts_event=ts,
                    exchange="binance",
                    symbol=sym,
                    bid=1.1,
                    bid_qty=2.0,
                    ask=1.2,
                    ask_qty=0.5,
                    ts_recv=ts,
                    update_id=i,
                )
            )
    return out


async def _check_export(store: Store, out: Path) -> None:
    events = _events()
    for i in range(0, len(events), 2000):
        await store.write(events[i : i + 2000])
    stats = await export(store, "trades", out, ["BTCUSDT"], chunk=1000)
    assert stats.rows == 3000
    names = sorted(str(p.relative_to(out)) for p in stats.files)
    assert names == [
        "trades/date=2025-12-05/symbol=BTCUSDT/part-0.parquet",
        "trades/date=2025-12-06/symbol=BTCUSDT/part-0.parquet",
    ]
    f = pq.ParquetFile(stats.files[0])
    groups = [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
    assert max(groups) <= 2 * 1000  # buffered a chunk or two at a time, never a whole day
    assert f.schema_arrow.field("price").type == pa.decimal128(38, 18)
    assert f.schema_arrow.field("ts_event").type == pa.int64()
    table = ds.dataset(out / "trades", partitioning="hive").to_table()
    assert table.num_rows == 3000
    prices = set(table.column("price").to_pylist())
    assert prices == {Decimal(str(p)) for p in PRICES[::2]}
    ts = pq.read_table(stats.files[0]).column("ts_event").to_pylist()
    assert ts == sorted(ts)
    # The same rows come back as the same events.
    source = ParquetReplaySource([out])
    back = [e async for b in source.batches(512) for e in b]
    assert back == [e for e in events if isinstance(e, Trade) and e.symbol == "BTCUSDT"]
    # Time bounds: only the second day.
    stats2 = await export(store, "quotes", out / "q", since_ns=T0 + DAY, until_ns=T0 + 2 * DAY)
    assert stats2.rows == 300
    assert {p.parent.parent.name for p in stats2.files} == {"date=2025-12-06"}


def test_export_from_sqlite(tmp_path: Path) -> None:
    async def run() -> None:
        store = SqliteStore(tmp_path / "tw.db")
        await store.start()
        try:
            await _check_export(store, tmp_path / "out")
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.postgres
async def test_export_from_postgres(postgres_url: str, tmp_path: Path) -> None:
    store = PostgresStore(postgres_url, retry_max_s=20.0)
    await store.start()
    try:
        await _check_export(store, tmp_path / "out")
    finally:
        await store.close()


def test_exact_decimal_falls_back_beyond_double_integers() -> None:
    values = pa.array([1.5, 123456789.12345678, 1e-12])
    assert parquet.exact_decimal(values).to_pylist() == [
        Decimal("1.5"),
        Decimal("123456789.12345678"),
        Decimal("1E-12"),
    ]


def test_export_cli_and_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "tw.db"

    async def fill() -> None:
        store = SqliteStore(db)
        await store.start()
        try:
            await store.write(_events()[:500])
        finally:
            await store.close()

    asyncio.run(fill())
    monkeypatch.setenv("TRADEWIND_STORE__URL", f"sqlite:///{db}")
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["export", "--table", "trades", "--symbols", "BTCUSDT,ETHUSDT"]
    args += ["--since", "2025-12-05", "--until", "2025-12-06T00:00", "-o", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    n = sum(isinstance(e, Trade) for e in _events()[:500])
    assert f"exported {n} rows of trades into 2 files" in r.output
    r = runner.invoke(app, ["export", "--table", "fills", "-o", str(out)])
    assert r.exit_code == 2
    assert "tradewind: cannot export 'fills'" in r.output
    r = runner.invoke(app, ["export", "--table", "trades", "--since", "yesterday", "-o", str(out)])
    assert r.exit_code == 2
    assert "--since" in r.output


def test_backtest_on_an_export_trades_as_on_the_recording(tmp_path: Path) -> None:
    recording = market_file("binance_spot_btcusdt_trades_20240808.jsonl")

    async def record() -> None:
        events: list[MarketEvent] = [
            e async for b in ReplaySource([recording]).batches() for e in b
        ]
        store = SqliteStore(tmp_path / "tw.db")
        await store.start()
        try:
            await store.write(events)  # type: ignore[arg-type]
            await export(store, "trades", tmp_path / "export")
        finally:
            await store.close()

    asyncio.run(record())
    params = {"fast": 3, "slow": 10}
    a = run_backtest(BacktestSpec(data=(recording,), params=params))
    b = run_backtest(BacktestSpec(data=(tmp_path / "export",), params=params))
    assert b.market_events == a.market_events
    assert b.summary.fills == a.summary.fills
    assert b.summary.fills > 0
    assert b.metrics == a.metrics


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A new store of each kind (SQLite's cursor path, PostgreSQL's COPY/CSV path)."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "tw.db")
    url = str(request.getfixturevalue("postgres_url"))
    return lambda: PostgresStore(url, retry_max_s=20.0)


def test_book_deltas_and_bars_round_trip_through_parquet(
    tmp_path: Path, any_store: Callable[[], Store]
) -> None:
    from tradewind.events import Bar, BookDelta

    books: list[Event] = [
        BookDelta(id=f"d{i}", ts_event=T0 + i, exchange="binance", symbol="BTCUSDT",
                  bids=[(61837.63, 0.5), (61837.62, float(f"{i + 1}e-8"))],
                  asks=[(61837.64, 0.0)] if i else [],
                  snapshot=i == 0, first_update_id=i, last_update_id=i + 1, ts_recv=T0 + i,
                  prev_update_id=None if i == 0 else i)
        for i in range(5)
    ]  # fmt: skip
    bars: list[Event] = [
        Bar(id=f"k{i}", ts_event=T0 + 60 * i, exchange="binance", symbol="BTCUSDT",
            interval_s=60.0, ts_open=T0 + 60 * (i - 1), open=1.1, high=2.2, low=0.3, close=1.7,
            volume=12.5, trades=7, ts_recv=0)
        for i in range(3)
    ]  # fmt: skip

    async def run() -> None:
        store = any_store()
        await store.start()
        try:
            await store.write([*books, *bars])
            await export(store, "book_deltas", tmp_path / "out", chunk=1000)
            await export(store, "bars", tmp_path / "out")
        finally:
            await store.close()
        back = [e async for b in ParquetReplaySource([tmp_path / "out"]).batches() for e in b]
        assert sorted(back, key=lambda e: e.id) == sorted([*books, *bars], key=lambda e: e.id)
        t = pq.read_table(tmp_path / "out" / "bars" / "date=2025-12-05" / "symbol=BTCUSDT")
        assert t.column("close").to_pylist() == [Decimal("1.7")] * 3
        d = pq.read_table(tmp_path / "out" / "book_deltas" / "date=2025-12-05" / "symbol=BTCUSDT")
        assert d.schema.field("bids").type == pa.list_(
            pa.field(
                "level",
                pa.struct([pa.field("price", pa.decimal128(38, 18), nullable=False),
                           pa.field("qty", pa.decimal128(38, 18), nullable=False)]),
                nullable=False,
            )
        )  # fmt: skip
        d = d.sort_by("ts_event")
        assert d.column("bids")[1].as_py() == [
            {"price": Decimal("61837.63"), "qty": Decimal("0.5")},
            {"price": Decimal("61837.62"), "qty": Decimal("2E-8")},
        ]
        assert d.column("asks")[0].as_py() == []
        assert (
            pc.list_flatten(d.column("asks").combine_chunks()).field("qty").to_pylist()
            == [Decimal(0)] * 4
        )

    asyncio.run(run())


def test_backtest_cli_takes_an_export_folder_and_refuses_others(tmp_path: Path) -> None:
    async def fill() -> None:
        store = SqliteStore(tmp_path / "tw.db")
        await store.start()
        try:
            await store.write(_events()[:2000])
            await export(store, "trades", tmp_path / "export")
        finally:
            await store.close()

    asyncio.run(fill())
    runner = CliRunner()
    out = tmp_path / "bt"
    r = runner.invoke(
        app, ["backtest", "-d", str(tmp_path / "export"), "-o", str(out), "--no-plot"]
    )
    assert r.exit_code == 0, r.output
    assert (out / "result.json").exists()
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["backtest", "-d", str(tmp_path / "empty"), "-o", str(out)])
    assert r.exit_code == 2
    assert "without a Parquet export" in r.output


@contextlib.contextmanager
def _read_only_dir(d: Path) -> Iterator[Path]:
    """``d`` seen through a read-only bind mount (root ignores file modes), or
    with its modes taken away (anyone else)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [d, *d.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield d
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    view = d.parent / f"{d.name}-ro"
    view.mkdir()
    proc = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(d), str(view)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
    try:
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=False)


HEAD = ", ".join(ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads())
TRADES_500 = sum(isinstance(e, Trade) for e in _events()[:500])


def _sqlite_with_rows(db: Path, revision: str = "head") -> None:
    async def fill() -> None:
        store = SqliteStore(db)
        await store.start()
        try:
            await store.write(_events()[:500])
        finally:
            await store.close()

    asyncio.run(fill())
    if revision != "head":
        from alembic import command

        command.downgrade(migrate.alembic_config(f"sqlite:///{db}"), revision)


def test_export_reads_a_read_only_sqlite_file_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "db"
    d.mkdir()
    _sqlite_with_rows(d / "tw.db")
    before = hashlib.sha256((d / "tw.db").read_bytes()).hexdigest()
    with _read_only_dir(d) as ro:
        monkeypatch.setenv("TRADEWIND_STORE__URL", f"sqlite:///{ro / 'tw.db'}")
        r = CliRunner().invoke(app, ["export", "--table", "trades", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert f"exported {TRADES_500} rows of trades" in r.output
    assert hashlib.sha256((d / "tw.db").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in d.iterdir()) == ["tw.db"]


def test_export_refuses_an_older_unknown_or_missing_sqlite_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "old.db"
    _sqlite_with_rows(db, "0003_partitions")
    monkeypatch.setenv("TRADEWIND_STORE__URL", f"sqlite:///{db}")
    args = ["export", "--table", "trades", "-o", str(tmp_path / "o")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "tradewind: the database's schema '0003_partitions' is older than "
        f"{HEAD}: run tradewind migrate first"
    ]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
        ("0003_partitions",)
    ]  # not migrated
    conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    conn.commit()
    conn.close()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert "'0099_from_the_future' is unknown to this tradewind" in r.output
    assert not (tmp_path / "o").exists()
    monkeypatch.setenv("TRADEWIND_STORE__URL", f"sqlite:///{tmp_path / 'none.db'}")
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert "tradewind: no SQLite database at" in r.output
    assert not (tmp_path / "none.db").exists()


@pytest.mark.postgres
def test_export_with_a_select_only_postgres_role(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"twreader_{uuid.uuid4().hex[:8]}"

    async def admin(*sql: str) -> None:
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            for q in sql:
                await conn.execute(q)
        finally:
            await conn.close()

    async def fill() -> None:
        store = PostgresStore(postgres_url, retry_max_s=20.0)
        await store.start()
        try:
            await store.write(_events()[:500])
        finally:
            await store.close()

    asyncio.run(fill())
    asyncio.run(
        admin(
            f"CREATE ROLE {role} LOGIN",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        )
    )
    try:
        parts = urlsplit(postgres_url)
        reader = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        monkeypatch.setenv("TRADEWIND_STORE__URL", reader)
        args = ["export", "--table", "trades", "-o", str(tmp_path / "o")]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        assert f"exported {TRADES_500} rows of trades" in r.output
        asyncio.run(admin("UPDATE alembic_version SET version_num = '0003_partitions'"))
        r = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "o2")])
        assert r.exit_code == 2
        assert "is older than" in r.output
    finally:
        asyncio.run(admin(f"DROP OWNED BY {role}", f"DROP ROLE {role}"))
