"""Recorded REST depth snapshots name their symbol, so a recording of several
symbols replays each snapshot into its own book."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tradewind.events import BookDelta
from tradewind.exchanges.binance.detect import recognise_depth_snapshot, recognise_spot
from tradewind.exchanges.binance.feed import recorded_snapshot
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.exchanges.common.detect import NOT_MINE, SILENT
from tradewind.exchanges.replay import ReplaySource

BODY = b'{"lastUpdateId":7,"bids":[["100.0","1.5"]],\n"asks":[["101.0","2"]]}'
ETH_DEPTH = json.dumps(
    {
        "stream": "ethusdt@depth@100ms",
        "data": {"e": "depthUpdate", "E": 1, "s": "ETHUSDT", "U": 5, "u": 6, "b": [], "a": []},
    }
).encode()


def test_the_line_names_the_symbol_after_the_update_id() -> None:
    line = recorded_snapshot(BODY, "BTCUSDT")
    assert b"\n" not in line
    assert line.startswith(b'{"lastUpdateId":7,"symbol":"BTCUSDT",')
    assert json.loads(line) == {**json.loads(BODY), "symbol": "BTCUSDT"}
    assert recorded_snapshot(line, "ETHUSDT") == line


def test_the_parser_files_it_under_its_own_symbol_not_the_last_stream() -> None:
    parser = BinanceParser()
    parser.parse(ETH_DEPTH, 1)
    (snap,) = parser.parse(recorded_snapshot(BODY, "BTCUSDT"), 2)
    assert isinstance(snap, BookDelta) and snap.snapshot
    assert (snap.symbol, snap.last_update_id) == ("BTCUSDT", 7)
    # A bare body (older recordings) still takes the stream's symbol.
    (bare,) = parser.parse(BODY.replace(b"\n", b""), 3)
    assert isinstance(bare, BookDelta) and bare.symbol == "ETHUSDT"


def test_detection_stays_certain() -> None:
    line = recorded_snapshot(BODY, "BTCUSDT")
    assert recognise_spot(line) == SILENT
    assert recognise_depth_snapshot(line) == NOT_MINE


def _depth(symbol: str, first: int, last: int) -> bytes:
    data = {"e": "depthUpdate", "E": last, "s": symbol, "U": first, "u": last, "b": [], "a": []}
    wrapped = {"stream": f"{symbol.lower()}@depth@100ms", "data": data}
    return json.dumps(wrapped, separators=(",", ":")).encode()


def test_replay_puts_a_snapshot_back_before_the_diff_the_live_book_applied_first(
    tmp_path: Path,
) -> None:
    """Recorded after the diffs the live book buffered while fetching it, the
    snapshot is replayed before the first of them it applied (the straddling
    one), never after them: they would be lost under it."""
    snap = recorded_snapshot(BODY.replace(b"7", b"40"), "BTCUSDT")
    rec = tmp_path / "rec.jsonl"
    rec.write_bytes(
        b"\n".join(
            [
                _depth("BTCUSDT", 30, 35),
                _depth("ETHUSDT", 38, 41),  # another symbol's ids never pair
                _depth("BTCUSDT", 36, 41),
                _depth("BTCUSDT", 42, 44),
                snap,
                _depth("BTCUSDT", 45, 47),
            ]
        )
        + b"\n"
    )
    events = [e for batch in _replay(rec) for e in batch if isinstance(e, BookDelta)]
    order = [(e.symbol, e.snapshot, e.last_update_id) for e in events]
    assert order == [
        ("BTCUSDT", False, 35),
        ("ETHUSDT", False, 41),
        ("BTCUSDT", True, 40),
        ("BTCUSDT", False, 41),
        ("BTCUSDT", False, 44),
        ("BTCUSDT", False, 47),
    ]


def _replay(path: Path) -> list[list[object]]:
    async def collect() -> list[list[object]]:
        return [list(b) async for b in ReplaySource([path]).batches()]

    return asyncio.run(collect())
