"""Book sync on the real recordings: rebuilt books must equal what the exchange
said its top of book was, and every broken proof (gap, checksum, missing
snapshot) must be detected and recovered from a fresh snapshot."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest

from tests.conftest import market_file
from tradewind.events import BookDelta, Quote
from tradewind.exchanges.binance.book import BinanceSync
from tradewind.exchanges.binance.parser import BinanceParser, BinanceUsdmParser
from tradewind.exchanges.bybit.book import BybitSync
from tradewind.exchanges.bybit.parser import BybitLinearParser, BybitParser
from tradewind.exchanges.coinbase.book import CoinbaseSync
from tradewind.exchanges.coinbase.parser import CoinbaseParser
from tradewind.exchanges.common.book import BookSync, BookUpdate, ConnectionSequence, L2Book
from tradewind.exchanges.kraken.book import KrakenSync, kraken_checksum
from tradewind.exchanges.kraken.parser import KrakenParser

SPOT = "binance_spot_btcusdt_combined_20240808.jsonl"
USDM = "binance_usdm_btcusdt_combined_20240808.jsonl"


def _lines(name: str) -> list[bytes]:
    return [line.strip() for line in market_file(name).read_bytes().splitlines() if line.strip()]


def _top_matches(book: L2Book, q: Quote) -> bool:
    return book.best_bid() == (q.bid, q.bid_qty) and book.best_ask() == (q.ask, q.ask_qty)


class _Replay:
    """Feeds a Binance recording through one sync and compares the book with
    every ``bookTicker`` of the same update id (the ticker is real time, the
    diff batched, so the ticker usually comes first); serves 'fresh REST
    snapshots' from a reference book that saw every line."""

    def __init__(self, futures: bool) -> None:
        self.parser = BinanceUsdmParser() if futures else BinanceParser()
        self.sync = BinanceSync(self.parser.exchange, "BTCUSDT", futures=futures)
        self.checked = 0
        self.mismatched = 0
        self.published: list[BookDelta] = []
        self.quotes: dict[int, Quote] = {}
        self._checked_ids: set[int] = set()

    def _check(self, q: Quote) -> None:
        if q.update_id in self._checked_ids:
            return
        self._checked_ids.add(q.update_id)
        self.checked += 1
        self.mismatched += not _top_matches(self.sync.book, q)

    def run(self, lines: list[bytes], reference: BinanceSync | None = None) -> None:
        for line in lines:
            for item in self.parser.decode(line, 0):
                if isinstance(item, BookUpdate):
                    res = self.sync.on_update(item)
                    self.published += res.events
                    if res.resync and reference is not None and reference.synced:
                        snap = _snapshot_of(reference)
                        self.published += self.sync.on_update(snap).events
                    if reference is not None:
                        reference_res = reference.on_update(item)
                        assert reference_res.resync in (None, "awaiting_snapshot")
                    q = self.quotes.get(self.sync.last_id)
                    if self.sync.synced and q is not None:
                        self._check(q)
                elif isinstance(item, Quote):
                    self.quotes[item.update_id] = item
                    if self.sync.synced and item.update_id == self.sync.last_id:
                        self._check(item)


def _snapshot_of(sync: BinanceSync) -> BookUpdate:
    bids, asks = sync.book.snapshot_levels()
    return BookUpdate(
        id=f"ref:{sync.last_id}",
        exchange=sync.exchange,
        symbol=sync.symbol,
        bids=bids,
        asks=asks,
        snapshot=True,
        first_id=sync.last_id,
        last_id=sync.last_id,
        ts_event=0,
        ts_recv=0,
    )


@pytest.mark.parametrize(("name", "futures", "expected"), [(SPOT, False, 95), (USDM, True, 18)])
def test_binance_book_equals_book_ticker(name: str, futures: bool, expected: int) -> None:
    r = _Replay(futures)
    r.run(_lines(name))
    print(f"{name}: {r.checked} top-of-book checks, {r.mismatched} mismatches")
    assert r.checked == expected
    assert r.mismatched == 0
    assert r.sync.gaps == 0 and r.sync.crossed == 0
    assert r.published[0].snapshot and not any(e.snapshot for e in r.published[1:])


@pytest.mark.parametrize(("name", "futures"), [(SPOT, False), (USDM, True)])
def test_deleted_diff_is_a_gap_recovered_by_resync(name: str, futures: bool) -> None:
    lines = _lines(name)
    depth = [i for i, line in enumerate(lines) if b"@depth" in line[:40]]
    victim = depth[len(depth) // 2]

    parser = BinanceUsdmParser() if futures else BinanceParser()
    reference = BinanceSync(parser.exchange, "BTCUSDT", futures=futures)
    r = _Replay(futures)
    r.parser = parser
    # The reference sees the deleted line too, so its book is the exchange's truth.
    ref_parser = BinanceUsdmParser() if futures else BinanceParser()
    for i, line in enumerate(lines):
        if i == victim:
            for item in ref_parser.decode(line, 0):
                assert isinstance(item, BookUpdate)
                reference.on_update(item)
            continue
        r.run([line], reference)
    assert r.sync.gaps == 1
    assert r.sync.resyncs == 1
    assert r.sync.synced
    assert r.mismatched == 0
    assert r.checked > 0
    snapshots = [e for e in r.published if e.snapshot]
    assert len(snapshots) == 2
    assert r.sync.book.bids == reference.book.bids and r.sync.book.asks == reference.book.asks


def test_binance_spot_four_symbols_from_rest_snapshots() -> None:
    """The 2021 capture: snapshots from a separate REST file, four symbols."""
    order = ["XMRBTC", "FTMUSDT", "SXPBTC", "BADGERBTC"]
    bodies = _lines("binance_spot_rest_depth_20210814.jsonl")
    parser = BinanceParser()
    syncs = {s: BinanceSync("binance", s) for s in order}
    for sym, body in zip(order, bodies, strict=True):
        assert syncs[sym].on_update(parser.snapshot(body, sym, 0)).resync is None
    checked = Counter[str]()
    quotes: dict[tuple[str, int], Quote] = {}
    for line in _lines("binance_spot_4sym_ws_20210814.jsonl"):
        for item in parser.decode(line, 0):
            if isinstance(item, BookUpdate):
                sync = syncs[item.symbol]
                assert sync.on_update(item).resync is None
                q = quotes.pop((item.symbol, sync.last_id), None)
            elif isinstance(item, Quote):
                sync = syncs[item.symbol]
                quotes[(item.symbol, item.update_id)] = item
                q = quotes.pop((item.symbol, sync.last_id), None)
            else:
                continue
            if q is not None and sync.synced:
                assert _top_matches(sync.book, q), q
                checked[q.symbol] += 1
    print("four-symbol top-of-book checks:", dict(checked))
    assert all(s.synced and s.gaps == 0 for s in syncs.values())
    assert sum(checked.values()) > 0


def _kraken_books(lines: list[bytes]) -> tuple[dict[str, KrakenSync], list[BookUpdate]]:
    parser = KrakenParser()
    syncs: dict[str, KrakenSync] = {}
    updates: list[BookUpdate] = []
    for line in lines:
        for item in parser.decode(line, 0):
            if isinstance(item, BookUpdate):
                sync = syncs.setdefault(item.symbol, KrakenSync("kraken", item.symbol, depth=1000))
                res = sync.on_update(item)
                assert res.resync is None, (item.symbol, res.resync)
                updates.append(item)
    return syncs, updates


def test_kraken_v1_checksums_validate_on_every_update() -> None:
    syncs, updates = _kraken_books(_lines("kraken_spot_ws_v1_20210417.jsonl"))
    with_checksum = sum(1 for u in updates if u.checksum is not None)
    ok = sum(s.checksums_ok for s in syncs.values())
    print(f"kraken v1: {len(syncs)} books, {ok}/{with_checksum} checksums valid")
    assert len(syncs) == 10
    assert with_checksum == 4269
    assert ok == with_checksum
    assert all(s.checksum_failures == 0 and s.synced for s in syncs.values())


def test_kraken_corrupted_checksum_resyncs_that_pair_only() -> None:
    lines = _lines("kraken_spot_ws_v1_20210417.jsonl")
    parser = KrakenParser()
    syncs: dict[str, KrakenSync] = {}
    victim_pair = ""
    for line in lines:
        for item in parser.decode(line, 0):
            if not isinstance(item, BookUpdate):
                continue
            sync = syncs.setdefault(item.symbol, KrakenSync("kraken", item.symbol, depth=1000))
            if not victim_pair and item.checksum is not None and len(syncs) == 10:
                victim_pair = item.symbol
                item.checksum ^= 1
                res = sync.on_update(item)
                assert res.resync == "checksum"
                continue
            res = sync.on_update(item)
            if item.symbol == victim_pair and not item.snapshot:
                assert res.resync == "no_snapshot"
    assert syncs[victim_pair].checksum_failures == 1
    assert not syncs[victim_pair].synced
    assert all(s.synced for p, s in syncs.items() if p != victim_pair)


def test_kraken_checksum_of_documented_example() -> None:
    """The book of Kraken's checksum guide gives a known CRC32."""
    book = L2Book(10)
    asks = [("0.05005", "0.00000500"), ("0.05010", "0.00000500"), ("0.05015", "0.00000500")]
    bids = [("0.05000", "0.00000500"), ("0.04995", "0.00000500"), ("0.04990", "0.00000500")]
    book.apply_text(bids, asks)
    expected = "5005500" + "5010500" + "5015500" + "5000500" + "4995500" + "4990500"
    assert kraken_checksum(book) == zlib.crc32(expected.encode())


@pytest.mark.parametrize(
    ("name", "parser_cls", "books"),
    [
        ("bybit_v5_linear_ws_20260809.jsonl", BybitLinearParser, 4),
        ("bybit_v5_spot_ws_20260809.jsonl", BybitParser, 2),
    ],
)
def test_bybit_snapshot_then_contiguous_deltas(
    name: str, parser_cls: type[BybitParser], books: int
) -> None:
    parser = parser_cls()
    syncs: dict[str, BybitSync] = {}
    reasons = Counter[str]()
    for line in _lines(name):
        for item in parser.decode(line, 0):
            if isinstance(item, BookUpdate):
                sync = syncs.setdefault(item.symbol, BybitSync(parser.exchange, item.symbol))
                res = sync.on_update(item)
                if res.resync:
                    reasons[res.resync] += 1
    assert len(syncs) == books
    assert not reasons, reasons
    assert all(s.synced and s.applied > 0 and not s.book.crossed() for s in syncs.values())
    assert all(s.u_jumps == 0 for s in syncs.values())


def test_bybit_jump_is_applied_a_step_back_is_a_gap_and_a_snapshot_resets() -> None:
    """Bybit v5 promises no ``u + 1`` continuity on the public stream: skipping
    one recorded delta is a jump (applied, counted), while replaying an older
    one afterwards is the regression the docs let us detect."""
    lines = _lines("bybit_v5_spot_ws_20260809.jsonl")
    parser = BybitParser()
    sync = BybitSync("bybit", "BTCUSDT")
    updates = [
        u
        for line in lines
        for u in parser.decode(line, 0)
        if isinstance(u, BookUpdate) and u.symbol == "BTCUSDT"
    ]
    snap, deltas = updates[0], updates[1:]
    assert snap.snapshot
    sync.on_update(snap)
    for u in deltas[:10]:
        assert sync.on_update(u).resync is None
    res = sync.on_update(deltas[11])
    assert res.resync is None and res.events and sync.u_jumps == 1 and sync.gaps == 0
    assert sync.on_update(deltas[10]).resync == "gap"
    assert sync.gaps == 1 and not sync.synced
    assert sync.on_update(deltas[12]).resync == "no_snapshot"
    fresh = BookUpdate(**{**_fields(snap), "last_id": deltas[12].last_id, "first_id": 0})
    assert sync.on_update(fresh).events[0].snapshot
    assert sync.synced and sync.resyncs == 1
    assert sync.on_update(deltas[13]).resync is None


def _fields(u: BookUpdate) -> dict[str, object]:
    return {f: getattr(u, f) for f in BookUpdate.__slots__}  # type: ignore[attr-defined]


def test_coinbase_missing_l2_snapshot_is_detected_not_invented() -> None:
    parser = CoinbaseParser()
    seq = ConnectionSequence()
    syncs: dict[str, BookSync] = {}
    gaps: list[int] = []
    book_events = 0
    for line in _lines("coinbase_advanced_ws_20260809.jsonl"):
        items = parser.decode(line, 0)
        skipped = seq.check(parser.last_sequence)
        if skipped:
            gaps.append(parser.last_sequence)
        for item in items:
            if isinstance(item, BookUpdate):
                sync = syncs.setdefault(item.symbol, CoinbaseSync("coinbase", item.symbol))
                res = sync.on_update(item)
                assert res.resync == "no_snapshot"
                book_events += len(res.events)
    assert gaps == [14, 22]
    assert set(syncs) == {"BTC-USD", "ETH-USD"}
    assert all(not s.synced and s.no_snapshot > 0 for s in syncs.values())
    assert book_events == 0


def test_crossed_book_is_counted_and_resynced() -> None:
    sync = BybitSync("bybit", "X")
    base = {"id": "x", "exchange": "bybit", "symbol": "X", "ts_event": 0, "ts_recv": 0}
    sync.on_update(
        BookUpdate(
            **base, bids=[(10.0, 1.0)], asks=[(11.0, 1.0)], snapshot=True, first_id=1, last_id=1
        )  # type: ignore[arg-type]
    )
    res = sync.on_update(
        BookUpdate(**base, bids=[(11.5, 1.0)], asks=[], snapshot=False, first_id=2, last_id=2)  # type: ignore[arg-type]
    )
    assert res.resync == "crossed" and sync.crossed == 1 and not sync.synced


def _bybit(
    snapshot: bool,
    u: int,
    bids: list[tuple[float, float]],
    seq: int | None = None,
    asks: list[tuple[float, float]] | None = None,
) -> BookUpdate:
    return BookUpdate(
        id=f"x{u}",
        exchange="bybit",
        symbol="X",
        ts_event=1,
        ts_recv=1,
        bids=bids,
        asks=[(20.0, 1.0)] if asks is None else asks,
        snapshot=snapshot,
        first_id=u,
        last_id=u,
        prev_id=seq,
    )


def test_bybit_u1_delta_is_the_documented_reset_snapshot() -> None:
    """Bybit: "u=1 … is a snapshot due to the restart of the service; overwrite
    your local orderbook". It may arrive typed as a delta."""
    sync = BybitSync("bybit", "X")
    sync.on_update(_bybit(True, 500, [(10.0, 1.0), (9.0, 2.0)]))
    res = sync.on_update(_bybit(False, 1, [(12.0, 3.0)]))
    assert res.resync is None and res.events[0].snapshot
    assert sync.book.bids == {12.0: 3.0} and sync.last_id == 1 and sync.synced
    assert sync.on_update(_bybit(False, 2, [(11.0, 1.0)])).resync is None


def test_bybit_regression_is_a_gap_and_a_repeat_is_dropped() -> None:
    sync = BybitSync("bybit", "X")
    sync.on_update(_bybit(True, 500, [(10.0, 1.0)]))
    assert sync.on_update(_bybit(False, 501, [(10.0, 2.0)])).resync is None
    repeat = sync.on_update(_bybit(False, 501, [(10.0, 9.0)]))
    assert repeat.resync is None and not repeat.events and sync.book.bids == {10.0: 2.0}
    assert sync.on_update(_bybit(False, 400, [(10.0, 5.0)])).resync == "gap"
    assert sync.gaps == 1 and not sync.synced


def test_bybit_seq_going_back_is_a_gap_even_when_u_moves_on() -> None:
    """``seq``: "for the smaller seq, the data is generated earlier"."""
    sync = BybitSync("bybit", "X")
    sync.on_update(_bybit(True, 500, [(10.0, 1.0)], seq=9000))
    assert sync.on_update(_bybit(False, 501, [(10.0, 2.0)], seq=9005)).resync is None
    assert sync.on_update(_bybit(False, 505, [(10.0, 3.0)], seq=9010)).resync is None
    assert sync.u_jumps == 1 and sync.book.bids == {10.0: 3.0}
    assert sync.on_update(_bybit(False, 506, [(10.0, 4.0)], seq=9001)).resync == "gap"
    assert sync.gaps == 1 and not sync.synced


def test_bybit_u1_with_empty_sides_empties_the_book() -> None:
    """Bybit: a delisting or an auction start arrives as ``u=1`` with empty
    ``b``/``a``: the local book is cleared, not kept with stale levels."""
    sync = BybitSync("bybit", "X")
    sync.on_update(_bybit(True, 500, [(10.0, 1.0)]))
    res = sync.on_update(_bybit(False, 1, [], asks=[]))
    assert res.events[0].snapshot and res.events[0].bids == [] and res.events[0].asks == []
    assert not sync.book and sync.synced and sync.last_id == 1


def test_binance_spot_snapshot_without_time_is_dated_on_the_stream_clock() -> None:
    """Spot depth snapshots carry no time, and the live feed parses each with a
    fresh parser: the sync dates it on the stream's clock (the last diff it
    holds, else the first it precedes, else the next one to come), never 0,
    which filed every live snapshot under 1970 (a 1970 partition on
    PostgreSQL), and never the wall clock (a replayed stream's book would jump
    to today)."""
    body = _lines("binance_spot_rest_depth_20210814.jsonl")[0]
    now = 1_700_000_000_000_000_000
    snap = BinanceParser().snapshot(body, "XMRBTC", now)
    assert snap.ts_event == 0 and snap.ts_recv == now
    last = snap.last_id

    def diff(first: int, lst: int, ts: int) -> BookUpdate:
        return BookUpdate(f"d{lst}", "binance", "XMRBTC", [], [], False, first, lst, ts, now)

    def dated(*buffered: BookUpdate) -> int:
        sync = BinanceSync("binance", "XMRBTC")
        for u in buffered:
            sync.on_update(u)
        snap = BinanceParser().snapshot(body, "XMRBTC", now)
        out = sync.on_update(snap)
        if not buffered:
            assert out.events == []  # no stream time yet: the row waits for a diff
            out = sync.on_update(diff(last + 1, last + 1, 9_000))
            assert [e.snapshot for e in out.events] == [True, False]
        return out.events[0].ts_event

    held, straddling = diff(last - 3, last - 1, 5_000), diff(last, last + 2, 7_000)
    assert dated(held, straddling) == 5_000
    assert dated(straddling) == 7_000
    assert dated() == 9_000
    seen = BinanceParser()
    for line in _lines("binance_spot_4sym_ws_20210814.jsonl")[:5]:
        seen.decode(line, 0)
    assert seen.last_ts_ms > 0
    assert seen.snapshot(body, "XMRBTC", now).ts_event == seen.last_ts_ms * 1_000_000
