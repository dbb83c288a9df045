"""``tradewind download`` against the fake exchange's data.binance.vision:
daily archives checked against their ``.CHECKSUM``, a cut transfer resumed
with ``Range``, 429 waited out, and files that ``run`` detects and replays to
exactly the recorded trades. Bad input and a dead server end in one line."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import market_file
from tradewind.events import Trade
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.exchanges.fake import FakeExchange

pytestmark = pytest.mark.slow

TRADES = "binance_spot_btcusdt_trades_20240808.jsonl"
DAYS = ["--start", "2024-08-08", "--end", "2024-08-09"]


@contextlib.asynccontextmanager
async def archive() -> AsyncIterator[FakeExchange]:
    async with FakeExchange(market_file(TRADES), autostart=False, exchanges=["binance"]) as fake:
        yield fake


async def tradewind(cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tradewind",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def base(fake: FakeExchange) -> str:
    return f"http://{fake.host}:{fake.port}"


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql).fetchall())


def recorded_trade_ids() -> set[str]:
    parser = BinanceParser()
    return {
        e.trade_id
        for line in market_file(TRADES).read_bytes().splitlines()
        if line.strip()
        for e in parser.parse(line, 0)
        if isinstance(e, Trade)
    }


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_download_resumes_waits_out_429_and_run_replays_it(tmp_path: Path) -> None:
    out = tmp_path / "data"
    async with archive() as fake:
        fake.history.throttle(1, retry_after_s=0.5)
        fake.history.cut(1, at=0.4)
        rc, stdout, err = await tradewind(
            tmp_path,
            "download",
            "--symbols",
            "BTCUSDT",
            *DAYS,
            "-o",
            str(out),
            "--base-url",
            base(fake),
        )
        assert rc == 0, err
        seen = [(r.path.rsplit("/", 1)[1], r.range, r.status) for r in fake.history.requests]
        # Again: both days are there, nothing is fetched.
        before = len(fake.history.requests)
        rc2, stdout2, err2 = await tradewind(
            tmp_path,
            "download",
            "--symbols",
            "BTCUSDT",
            *DAYS,
            "-o",
            str(out),
            "--base-url",
            base(fake),
        )
        assert rc2 == 0, err2
        assert len(fake.history.requests) == before
    assert stdout2.count("already here") == 2
    text = " ".join(stdout.split())
    assert "BTCUSDT 2024-08-08: 9,738 rows" in text and "(resumed)" in text
    assert "BTCUSDT 2024-08-09: 19 rows" in text
    assert "1 rate-limited answers waited out" in text
    assert ("BTCUSDT-trades-2024-08-08.zip.CHECKSUM", None, 429) in seen
    ranged = [s for s in seen if s[1] is not None]
    assert ranged and ranged[0][0] == "BTCUSDT-trades-2024-08-08.zip" and ranged[0][2] == 206
    files = listing(out)
    assert files == ["BTCUSDT-trades-2024-08-08.csv", "BTCUSDT-trades-2024-08-09.csv"]

    db = tmp_path / "run.db"
    paths = [str(out / f) for f in files]
    rc, stdout, err = await tradewind(
        tmp_path, "run", "--data", paths[0], "--data", paths[1], "--db", str(db), "-q"
    )
    assert rc == 0, err
    stored = {str(r[0]) for r in rows(db, "SELECT trade_id FROM trades WHERE symbol = 'BTCUSDT'")}
    recorded = recorded_trade_ids()
    assert len(recorded) == 9757
    assert stored == recorded


async def test_klines_download_replays_as_bars(tmp_path: Path) -> None:
    out = tmp_path / "k"
    async with archive() as fake:
        rc, stdout, err = await tradewind(
            tmp_path, "download", "--symbols", "btcusdt", "--start", "2024-08-08",
            "--kind", "klines", "--interval", "1m", "-o", str(out), "--base-url", base(fake),
        )  # fmt: skip
    assert rc == 0, err
    csv = out / "BTCUSDT-1m-2024-08-08.csv"
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("open_time,open,high,low,close,volume,close_time")
    assert len(lines) - 1 == 6  # 23:54 to 23:59
    db = tmp_path / "k.db"
    rc, stdout, err = await tradewind(tmp_path, "run", "--data", str(csv), "--db", str(db))
    assert rc == 0, err
    assert "binance_kline_csv" in stdout
    assert rows(db, "SELECT count(*) FROM bars")[0][0] == 6


async def test_a_corrupt_archive_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    out = tmp_path / "c"
    out.mkdir()
    async with archive() as fake:
        fake.history.corrupt(2)
        rc, _, err = await tradewind(
            tmp_path, "download", "--symbols", "BTCUSDT", "--start", "2024-08-08",
            "-o", str(out), "--base-url", base(fake),
        )  # fmt: skip
    assert rc == 1
    assert err.strip().splitlines() == [
        f"tradewind: {base(fake)}/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-08.zip: "
        "the archive does not match its .CHECKSUM (downloaded twice); try again later"
    ]
    assert listing(out) == []


async def test_unknown_symbol_and_gaps_end_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "g"
    async with archive() as fake:
        rc, _, err = await tradewind(
            tmp_path, "download", "--symbols", "NOPEUSDT", "--start", "2024-08-08",
            "-o", str(out), "--base-url", base(fake),
        )  # fmt: skip
        assert rc == 1
        assert err.strip().splitlines() == [
            f"tradewind: no trades for NOPEUSDT on {base(fake)} from 2024-08-08 to 2024-08-08: "
            "unknown symbol, or not published yet"
        ]
        rc, stdout, err = await tradewind(
            tmp_path, "download", "--symbols", "BTCUSDT", "--start", "2024-08-09",
            "--end", "2024-08-10", "-o", str(out), "--base-url", base(fake),
        )  # fmt: skip
    assert rc == 1
    assert err.strip().splitlines() == ["tradewind: gaps: no archive for BTCUSDT 2024-08-10"]
    assert "1 of 2 day files" in stdout
    assert listing(out) == ["BTCUSDT-trades-2024-08-09.csv"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["--start", "2024-13-01"], 2,
         "tradewind: --start 2024-13-01: use a UTC date like 2024-08-08"),
        (
            ["--start", "2024-08-09", "--end", "2024-08-08"],
            2,
            "tradewind: --end 2024-08-08 is before --start 2024-08-09",
        ),
        (["--start", "2024-08-08", "--symbols", "BTC/USDT"], 2, "tradewind: --symbols BTC/USDT: "
         "a Binance symbol is letters and digits, e.g. BTCUSDT"),
        (["--start", "2024-08-08", "--kind", "book"], 2,
         "tradewind: --kind book: use one of trades, aggTrades, klines"),
        (["--start", "2024-08-08", "--venue", "nasdaq"], 2,
         "tradewind: --venue nasdaq: download covers binance, okx, bybit, coinbase, kraken"),
        (["--start", "2024-08-08", "--source", "ftp"], 2,
         "tradewind: --source ftp: use one of auto, archive, rest"),
        (["--start", "2024-08-08", "--rest-url", "api.binance.com"], 2,
         "tradewind: --rest-url api.binance.com: use http(s)://host[:port]"),
        (["--start", "2999-01-01"], 2,
         "tradewind: --end 2999-01-01 is after today ({today}, UTC)"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_in_one_line(
    args: list[str], code: int, line: str, tmp_path: Path
) -> None:
    symbols = [] if "--symbols" in args else ["--symbols", "BTCUSDT"]
    rc, _, err = await tradewind(tmp_path, "download", *symbols, *args, "-o", str(tmp_path / "x"))
    today = datetime.now(UTC).date()
    assert (rc, err.strip().splitlines()) == (code, [line.format(today=today)])
    assert not (tmp_path / "x").exists()


async def test_a_dead_server_ends_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    rc, _, err = await tradewind(
        tmp_path, "download", "--symbols", "BTCUSDT", "--start", "2024-08-08",
        "-o", str(tmp_path), "--base-url", url,
    )  # fmt: skip
    assert rc == 1
    assert err.strip().splitlines() == [
        f"tradewind: cannot download {url}/data/spot/daily/trades/BTCUSDT/"
        "BTCUSDT-trades-2024-08-08.zip.CHECKSUM: Connection refused"
    ]
