"""Recorded REST depth snapshots name their symbol, so a recording of several
symbols replays each snapshot into its own book."""

from __future__ import annotations

import json

from tradewind.events import BookDelta
from tradewind.exchanges.binance.detect import recognise_depth_snapshot, recognise_spot
from tradewind.exchanges.binance.feed import recorded_snapshot
from tradewind.exchanges.binance.parser import BinanceParser
from tradewind.exchanges.common.detect import NOT_MINE, SILENT

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
