"""db_writer's optional down-sampling: one quote per step, books as periodic
snapshots that equal the book the deltas built, everything else untouched."""

from __future__ import annotations

from tests.bus_contract import fill, trade
from tradewind.events import BookDelta, Event, Quote
from tradewind.services.downsample import Downsampler

MS = 1_000_000


def quote(i: int, ts: int, symbol: str = "BTCUSDT") -> Quote:
    return Quote(id=f"q{symbol}{i}", ts_event=ts, exchange="binance", symbol=symbol, bid=1.0,
                 bid_qty=1.0, ask=2.0, ask_qty=1.0, ts_recv=ts, update_id=i)  # fmt: skip


def delta(i: int, ts: int, bids: list[tuple[float, float]], snapshot: bool = False) -> BookDelta:
    return BookDelta(id=f"d{i}", ts_event=ts, exchange="binance", symbol="BTCUSDT", bids=bids,
                     asks=[(10.0, 1.0)] if snapshot else [], snapshot=snapshot,
                     first_update_id=i, last_update_id=i, ts_recv=ts)  # fmt: skip


def test_off_by_default_passes_everything() -> None:
    d = Downsampler(0, 0)
    events: list[Event] = [quote(1, 1), delta(1, 1, [(1.0, 1.0)]), trade(1)]
    assert not d.active
    assert d.filter(events) == events


def test_one_quote_per_step_per_symbol_and_trading_events_kept() -> None:
    d = Downsampler(100, 0)
    events: list[Event] = [quote(i, i * 30 * MS) for i in range(10)]  # 0 … 270 ms
    events += [quote(i, i * 30 * MS, "ETHUSDT") for i in range(2)]
    events += [trade(1), fill(1)]
    kept = d.filter(events)
    assert [e.id for e in kept if isinstance(e, Quote) and e.symbol == "BTCUSDT"] == [
        "qBTCUSDT0",  # 0 ms
        "qBTCUSDT4",  # 120 ms: first at or after 100
        "qBTCUSDT7",  # 210 ms
    ]
    assert [e.id for e in kept if isinstance(e, Quote) and e.symbol == "ETHUSDT"] == ["qETHUSDT0"]
    assert kept[-2:] == [trade(1), fill(1)]
    assert d.dropped == 7 + 1


def test_books_become_snapshots_of_the_built_book() -> None:
    d = Downsampler(0, 1.0)
    s = 1_000_000_000
    before = d.filter([delta(0, 0, [(5.0, 1.0)])])  # no base yet
    assert before == []
    events: list[Event] = [
        delta(1, s // 2, [(5.0, 1.0), (4.0, 2.0)], snapshot=True),  # snapshot: stored
        delta(2, s // 2 + 1, [(5.0, 0.0)]),  # inside the step: folded in
        delta(3, s + 5, [(3.0, 7.0)]),  # next step: stored whole
    ]
    kept = d.filter(events)
    assert [e.snapshot for e in kept if isinstance(e, BookDelta)] == [True, True]
    last = kept[-1]
    assert isinstance(last, BookDelta)
    assert last.bids == [(4.0, 2.0), (3.0, 7.0)]
    assert last.asks == [(10.0, 1.0)]
    assert last.ts_event == s + 5
