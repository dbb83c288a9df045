"""OKX v5 parser and book sync on a real recording (spot, inverse swap, inverse
future): every recorded signed CRC32 checksum is reproduced."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tradewind.events import Quote, Side, Trade
from tradewind.exchanges.common.book import BookUpdate
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.okx.book import OkxSync, checksum_of
from tradewind.exchanges.okx.parser import OkxParser

RECORDING = Path(__file__).resolve().parents[1] / "data" / "venues" / "okx_v5_ws_20220513.jsonl"


def _decoded() -> tuple[OkxParser, list[object]]:
    parser = OkxParser()
    out: list[object] = []
    for line in RECORDING.read_bytes().splitlines():
        out += parser.decode(line, 0)
    return parser, out


def test_recording_parses_completely() -> None:
    parser, items = _decoded()
    kinds = Counter(type(i).__name__ for i in items)
    assert kinds == {"BookUpdate": 290, "Trade": 74, "Quote": 28}
    assert parser.ignored == {"subscription_ack": 18}
    trade = next(i for i in items if isinstance(i, Trade) and i.symbol == "UNI-USD-SWAP")
    assert (trade.price, trade.qty, trade.side) == (5.123, 100.0, Side.SELL)  # 100 contracts
    assert trade.ts_event == 1652459215150 * 1_000_000
    quote = next(i for i in items if isinstance(i, Quote))
    assert quote.ts_event > 0 and quote.bid < quote.ask


def test_every_recorded_checksum_is_reproduced() -> None:
    _, items = _decoded()
    syncs: dict[str, OkxSync] = {}
    for item in items:
        if isinstance(item, BookUpdate):
            sync = syncs.setdefault(item.symbol, OkxSync("okx", item.symbol))
            assert sync.on_update(item).resync is None
    assert {s: (b.checksums_ok, b.checksum_failures) for s, b in syncs.items()} == {
        "BTC-USD-220527": (98, 0),
        "UNI-USD-SWAP": (92, 0),
        "BTC-USDT": (97, 0),
    }


def test_checksum_mismatch_drops_the_book_and_asks_for_a_snapshot() -> None:
    _, items = _decoded()
    books = [i for i in items if isinstance(i, BookUpdate) and i.symbol == "BTC-USDT"]
    sync = OkxSync("okx", "BTC-USDT")
    sync.on_update(books[0])
    bad = books[1]
    bad.checksum = (bad.checksum or 0) ^ 1
    res = sync.on_update(bad)
    assert res.resync == "checksum" and not sync.synced and sync.checksum_failures == 1
    assert sync.on_update(books[2]).resync == "no_snapshot"


def test_checksum_of_interleaves_and_continues_the_longer_side() -> None:
    import zlib

    expected = zlib.crc32(b"3366.1:7:3366.8:9:3366:6")
    signed = expected - (1 << 32) if expected >= 1 << 31 else expected
    assert checksum_of([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"]]) == signed


def test_seq_ids_detect_gaps_when_sent() -> None:
    def upd(snapshot: bool, seq: int, prev: int | None) -> BookUpdate:
        return BookUpdate(
            id=f"okx:X:{seq}",
            exchange="okx",
            symbol="X",
            bids=[(1.0, 1.0)],
            asks=[(2.0, 1.0)],
            snapshot=snapshot,
            first_id=seq,
            last_id=seq,
            ts_event=1,
            ts_recv=1,
            prev_id=prev,
            text_bids=[("1", "1")],
            text_asks=[("2", "1")],
        )

    sync = OkxSync("okx", "X")
    sync.on_update(upd(True, 10, -1))
    assert sync.on_update(upd(False, 11, 10)).resync is None
    assert sync.on_update(upd(False, 13, 12)).resync == "gap"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"event":"error","code":"60012","msg":"Invalid request"}', "exchange_error"),
        (b'{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[]}', "unknown_channel"),
        (b'{"arg":{"channel":"trades"},"data":[{"px":"1"}]}', "invalid_message"),
        (b"{not json", "malformed_json"),
    ],
)
def test_bad_frames_name_their_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        OkxParser().decode(frame, 0)
    assert err.value.reason == reason
