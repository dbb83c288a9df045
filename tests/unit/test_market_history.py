"""The paper exchange's view of the market (``MarketState``, ``MarketHistory``):
each example named for the bug it catches, then the invariants over random
streams of trades, quotes and book deltas with a real spread, prices below and
above 1."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewind.events import BookDelta, MarketEvent, Quote, Side, Trade
from tradewind.execution.paper.book import MarketHistory, MarketState

_n = [0]


def trade(ts: int, price: float, qty: float = 1.0) -> Trade:
    _n[0] += 1
    return Trade(
        id=f"t{_n[0]}",
        ts_event=ts,
        exchange="x",
        symbol="ADAUSDT",
        price=price,
        qty=qty,
        side=Side.BUY,
        trade_id=str(_n[0]),
        ts_recv=ts,
    )


def quote(ts: int, bid: float, ask: float, bid_qty: float = 1.0, ask_qty: float = 2.0) -> Quote:
    _n[0] += 1
    return Quote(
        id=f"q{_n[0]}",
        ts_event=ts,
        exchange="x",
        symbol="ADAUSDT",
        bid=bid,
        bid_qty=bid_qty,
        ask=ask,
        ask_qty=ask_qty,
        ts_recv=ts,
    )


def book(
    ts: int,
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
    uid: int,
    snapshot: bool = False,
) -> BookDelta:
    _n[0] += 1
    return BookDelta(
        id=f"b{_n[0]}",
        ts_event=ts,
        exchange="x",
        symbol="ADAUSDT",
        bids=bids,
        asks=asks,
        snapshot=snapshot,
        first_update_id=uid,
        last_update_id=uid,
        ts_recv=ts,
    )


def test_a_late_order_sees_no_future_event() -> None:
    """The state at an order's insertion point holds every event up to its
    time and none after it, across checkpoint boundaries."""
    h = MarketHistory(10**12, checkpoint_every=4)
    for ts in range(1, 12):
        h.apply(trade(ts, 0.1 * ts))
    for ts in range(0, 12):
        pos, exact = h.insertion_point(ts)
        assert (pos, exact) == (ts, True)
        assert h.state_at(pos).last == (0.1 * ts if ts else None)
        assert [e.ts_event for e in h.since(pos)] == list(range(ts + 1, 12))
    assert h.insertion_point(99) == (11, True)


def test_equal_timestamps_all_belong_before_the_order() -> None:
    h = MarketHistory(10**12, checkpoint_every=2)
    for ts, px in [(1, 0.5), (2, 0.6), (2, 0.7), (2, 0.8), (3, 0.9)]:
        h.apply(trade(ts, px))
    pos, _ = h.insertion_point(2)
    assert pos == 4 and h.state_at(pos).last == 0.8


def test_batched_trades_keep_the_last_price() -> None:
    one, batch = (
        MarketHistory(10**12, checkpoint_every=3),
        MarketHistory(10**12, checkpoint_every=3),
    )
    events: list[MarketEvent] = [trade(i, 0.3 + i / 100) for i in range(1, 8)]
    for e in events:
        one.apply(e)
    batch.extend(events)
    assert batch.state.last == one.state.last == 0.37
    assert batch.end == one.end == 7 and batch.watermark == one.watermark == 7
    assert [c.state for c in batch.checkpoints] == [c.state for c in one.checkpoints]
    assert batch.events == one.events


def test_the_bid_at_the_quote_price_is_not_counted_twice() -> None:
    """The quote replaces the book's level at its own price (and hides better,
    stale ones) on both sides."""
    s = MarketState()
    s.apply(book(1, [(0.52, 5.0), (0.51, 7.0), (0.5, 9.0)], [(0.53, 4.0), (0.54, 6.0)], 1, True))
    s.apply(quote(2, 0.51, 0.54, bid_qty=3.0, ask_qty=2.0))
    assert s.levels(Side.BUY) == [(D("0.51"), D("3.0")), (D("0.5"), D("9.0"))]
    assert s.levels(Side.SELL) == [(D("0.54"), D("2.0"))]


def test_level_qty_reads_the_side_it_is_asked_for() -> None:
    s = MarketState()
    s.apply(book(1, [(0.5, 9.0), (0.49, 4.0)], [(0.52, 6.0), (0.53, 8.0)], 1, True))
    assert s.level_qty(Side.BUY, D("0.49")) == D("4.0")
    assert s.level_qty(Side.SELL, D("0.53")) == D("8.0")
    assert s.level_qty(Side.BUY, D("0.53")) == 0 and s.level_qty(Side.SELL, D("0.49")) == 0
    s.apply(quote(2, 0.5, 0.52, bid_qty=1.5, ask_qty=2.5))
    assert s.level_qty(Side.BUY, D("0.5")) == D("1.5")
    assert s.level_qty(Side.SELL, D("0.52")) == D("2.5")
    assert s.level_qty(Side.BUY, D("0.51")) == 0, "better than the best bid: nothing"
    assert s.level_qty(Side.SELL, D("0.51")) == 0, "better than the best ask: nothing"
    assert s.level_qty(Side.BUY, D("0.49")) == D("4.0")


def test_levels_from_a_quote_alone_and_nothing_known() -> None:
    s = MarketState()
    assert s.levels(Side.BUY) is None and s.levels(Side.SELL) is None
    s.apply(quote(1, 61000.5, 61001.0, bid_qty=0.25, ask_qty=0.5))
    assert s.levels(Side.BUY) == [(D("61000.5"), D("0.25"))]
    assert s.levels(Side.SELL) == [(D("61001.0"), D("0.5"))]


def test_deltas_before_a_snapshot_or_out_of_order_are_ignored() -> None:
    s = MarketState()
    s.apply(book(1, [(1.5, 1.0)], [], 5))
    assert not s.synced and s.bids == {}
    s.apply(book(2, [(1.4, 1.0)], [(1.6, 2.0)], 10, True))
    s.apply(book(3, [(1.4, 0.0), (1.3, 3.0)], [], 10))
    assert s.bids == {1.4: 1.0}, "an update id not past the snapshot's is stale"
    s.apply(book(4, [(1.4, 0.0), (1.3, 3.0)], [(1.6, 0.0), (1.7, 1.0)], 11))
    assert (s.bids, s.asks, s.book_id) == ({1.3: 3.0}, {1.7: 1.0}, 11)


# --- properties ----------------------------------------------------------------------

BASES = [0.35, 61000.0]


@st.composite
def streams(draw: st.DrawFn) -> list[MarketEvent]:
    """Event times never decrease by much (some equal); prices on a grid
    around a base below or above 1; books start with a snapshot most times."""
    base = draw(st.sampled_from(BASES))
    tick = base / 1000
    n = draw(st.integers(1, 40))
    out: list[MarketEvent] = []
    ts, uid = 1, 1
    for _ in range(n):
        ts += draw(st.integers(0, 3))
        kind = draw(st.sampled_from(["trade", "quote", "delta", "snapshot"]))
        mid = round(base + tick * draw(st.integers(-20, 20)), 6)
        if kind == "trade":
            out.append(trade(ts, mid, draw(st.integers(1, 9)) / 4))
        elif kind == "quote":
            half = tick * draw(st.integers(1, 3))
            out.append(quote(ts, round(mid - half, 6), round(mid + half, 6)))
        else:
            uid += draw(st.integers(0, 2))
            bids = [
                (round(mid - tick * k, 6), draw(st.sampled_from([0.0, 0.5, 2.0])))
                for k in draw(st.lists(st.integers(1, 6), max_size=4))
            ]
            asks = [
                (round(mid + tick * k, 6), draw(st.sampled_from([0.0, 0.5, 2.0])))
                for k in draw(st.lists(st.integers(1, 6), max_size=4))
            ]
            out.append(book(ts, bids, asks, uid, kind == "snapshot"))
    return out


PROPS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fold(events: list[MarketEvent]) -> MarketState:
    s = MarketState()
    for e in events:
        s.apply(e)
    return s


@PROPS
@given(streams(), st.integers(2, 9), st.data())
def test_replaying_up_to_any_point_is_the_live_state(
    events: list[MarketEvent], every: int, data: st.DataObject
) -> None:
    """No look-ahead: the state at the insertion point of any time equals the
    live state after exactly the events up to that time, and ``since`` gives
    the rest; applying the batch at once changes nothing."""
    h = MarketHistory(10**15, checkpoint_every=every)
    b = MarketHistory(10**15, checkpoint_every=every)
    cut = data.draw(st.integers(0, len(events)))
    for e in events:
        h.apply(e)
    b.extend(events[:cut])
    b.extend(events[cut:])
    assert b.state == h.state == fold(events)
    assert b.events == h.events and (b.end, b.watermark) == (h.end, h.watermark)
    assert [c.state for c in b.checkpoints] == [c.state for c in h.checkpoints]
    for t in sorted({0, *(e.ts_event for e in events)}):
        pos, exact = h.insertion_point(t)
        assert exact
        assert pos == sum(1 for e in events if e.ts_event <= t)
        assert all(e.ts_event <= t for e in events[:pos])
        assert pos == len(events) or events[pos].ts_event > t
        assert h.state_at(pos) == fold(events[:pos])
        assert h.since(pos) == events[pos:]


@PROPS
@given(streams())
def test_levels_are_sorted_unique_positive_and_never_crossed(events: list[MarketEvent]) -> None:
    """After a snapshot the book overlaid with the quote is sorted best first,
    has one entry per price and positive sizes; the best bid stays below the
    best ask whenever the quote is (a quote arriving after the deltas wins)."""
    s = MarketState()
    for e in events:
        s.apply(e)
        bids, asks = s.levels(Side.BUY), s.levels(Side.SELL)
        if bids is None or asks is None:
            assert not s.synced and s.quote is None
            continue
        for side, lv in ((Side.BUY, bids), (Side.SELL, asks)):
            prices = [p for p, _ in lv]
            assert len(set(prices)) == len(prices)
            assert prices == sorted(prices, reverse=side is Side.BUY)
            assert all(q > 0 for _, q in lv)
            for p, q in lv:
                assert s.level_qty(side, p) == q
        if s.quote is not None and bids and asks:
            assert bids[0][0] == D(repr(s.quote.bid)) and asks[0][0] == D(repr(s.quote.ask))
            assert bids[0][0] < asks[0][0]


@PROPS
@given(streams(), st.integers(2, 6), st.integers(1, 40))
def test_save_and_restore_round_trip(events: list[MarketEvent], every: int, horizon: int) -> None:
    """A history rebuilt from its saved chunks answers every question as the
    original does (evicted or not)."""
    h = MarketHistory(horizon, max_events=50, checkpoint_every=every)
    for e in events:
        h.apply(e)
    r = MarketHistory(horizon, max_events=50, checkpoint_every=every)
    r.restore(h.meta(), [h.chunk_at(p) for p in h.sealed()])
    assert r.state == h.state
    assert (r.start, r.end, r.watermark, r.evicted_max_ts) == (
        h.start,
        h.end,
        h.watermark,
        h.evicted_max_ts,
    )
    assert r.events == h.events
    for t in sorted({0, *(e.ts_event for e in events)}):
        assert r.insertion_point(t) == h.insertion_point(t)
        pos = r.insertion_point(t)[0]
        assert r.state_at(pos) == h.state_at(pos) and r.since(pos) == h.since(pos)
    more = trade(events[-1].ts_event + 5, 0.4)
    h.apply(more)
    r.apply(more)
    assert r.state == h.state and r.events == h.events


def test_a_lost_chunk_drops_the_history_before_it() -> None:
    """Restoring without one saved chunk keeps only what follows it, and an
    order older than that is known to be matched from a later state."""
    h = MarketHistory(10**12, checkpoint_every=4)
    for ts in range(1, 15):
        h.apply(trade(ts * 10, 0.3 + ts / 100))
    chunks = [h.chunk_at(p) for p in h.sealed()]
    assert [c.pos for c in chunks] == [0, 4, 8]
    r = MarketHistory(10**12, checkpoint_every=4)
    r.restore(h.meta(), [chunks[0], None, chunks[2]])
    assert (r.start, r.end) == (8, 14)
    assert r.evicted_max_ts == 89, "just before the first event kept (time 90)"
    assert r.insertion_point(50) == (8, False)
    assert r.insertion_point(95) == (9, True)
    assert r.state == h.state and r.events == h.events[8:]


def test_a_stale_book_bid_above_the_quote_is_not_resting_liquidity() -> None:
    """The quote is newer than the depth: a book bid above the quoted best bid
    (or an ask below the best ask) is gone, so nothing rests there."""
    s = MarketState()
    s.apply(book(1, [(0.52, 5.0), (0.5, 9.0)], [(0.53, 4.0), (0.56, 6.0)], 1, True))
    s.apply(quote(2, 0.51, 0.54))
    assert s.level_qty(Side.BUY, D("0.52")) == 0
    assert s.level_qty(Side.SELL, D("0.53")) == 0
    assert s.level_qty(Side.SELL, D("0.56")) == D("6.0")


def test_the_event_bound_evicts_exactly_past_max_events() -> None:
    """Whole intervals go once the events after the next one reach
    ``max_events``: 8 events kept of 12 (4 a checkpoint), none of 8."""
    h = MarketHistory(10**12, max_events=8, checkpoint_every=4)
    for _ in range(8):
        h.apply(trade(100, 0.3))
    assert h.start == 0 and len(h.events) == 8
    for _ in range(4):
        h.apply(trade(100, 0.3))
    assert h.start == 4 and len(h.events) == 8


def test_the_time_bound_keeps_an_interval_until_its_last_event_is_past() -> None:
    """An interval (times 0..300) goes when its *last* event is at or before
    the horizon (watermark 700 minus ``history``), not its first or second."""
    for history, start in ((500, 0), (401, 0), (400, 4)):
        h = MarketHistory(history, checkpoint_every=4)
        for i in range(8):
            h.apply(trade(i * 100, 0.3))
        assert h.start == start, history


def test_an_order_at_the_newest_evicted_time_is_matched_exactly() -> None:
    """Events at an order's own time belong before it, so an order at the
    newest evicted event's time lies inside the retained history."""
    h = MarketHistory(400, checkpoint_every=4)
    for i in range(8):
        h.apply(trade(i * 100, 0.3))
    assert h.evicted_max_ts == 300
    assert h.insertion_point(300) == (4, True)
    assert h.insertion_point(299)[1] is False


def test_an_unknown_chunk_is_named_in_the_error() -> None:
    h = MarketHistory(10**12, checkpoint_every=4)
    for i in range(5):
        h.apply(trade(i, 0.3))
    with pytest.raises(KeyError, match=r"^7$"):
        h.chunk_at(7)


def test_a_restore_refuses_a_chunk_list_that_does_not_match_the_meta() -> None:
    h = MarketHistory(10**12, checkpoint_every=4)
    for ts in range(1, 15):
        h.apply(trade(ts * 10, 0.3))
    chunks = [h.chunk_at(p) for p in h.sealed()]
    with pytest.raises(ValueError, match="shorter"):
        MarketHistory(10**12, checkpoint_every=4).restore(h.meta(), chunks[:2])


def test_a_truncated_chunk_counts_as_lost() -> None:
    """A saved chunk with its position right but events missing cannot be
    replayed from: the history before the next whole chunk is dropped."""
    h = MarketHistory(10**12, checkpoint_every=4)
    for ts in range(1, 15):
        h.apply(trade(ts * 10, 0.3 + ts / 100))
    c0, c1, c2 = (h.chunk_at(p) for p in h.sealed())
    short = type(c1)(c1.pos, c1.state, c1.events[:3])
    r = MarketHistory(10**12, checkpoint_every=4)
    r.restore(h.meta(), [c0, short, c2])
    assert (r.start, r.end) == (8, 14) and r.events == h.events[8:]


def test_a_lost_chunk_with_an_empty_tail_restores() -> None:
    """Saved right after a seal, the open interval is empty; losing the last
    sealed chunk then leaves no event at all, and the restore still works,
    treating everything up to the watermark as evicted."""
    h = MarketHistory(10**12, checkpoint_every=4)
    for ts in range(1, 9):
        h.apply(trade(ts * 10, 0.3))
    assert h.meta().tail.events == []
    r = MarketHistory(10**12, checkpoint_every=4)
    r.restore(h.meta(), [h.chunk_at(0), None])
    assert (r.start, r.end, r.events) == (8, 8, [])
    assert r.evicted_max_ts == 79 and r.state == h.state


def test_restored_interval_bounds_never_decrease_with_out_of_order_times() -> None:
    """An interval whose events are all older than an earlier one's keeps the
    earlier maximum, as the live history does, so bisection stays valid."""
    h = MarketHistory(10**12, checkpoint_every=4)
    for ts in (10, 500, 20, 30, 40, 50, 60, 70, 80):
        h.apply(trade(ts, 0.3))
    r = MarketHistory(10**12, checkpoint_every=4)
    r.restore(h.meta(), [h.chunk_at(p) for p in h.sealed()])
    assert [c.hi for c in r.checkpoints] == [c.hi for c in h.checkpoints] == [500, 500, -1]
    for t in (0, 15, 45, 75, 90, 600):
        assert r.insertion_point(t) == h.insertion_point(t)


def test_events_at_time_zero_set_the_watermark() -> None:
    h = MarketHistory(10**12, checkpoint_every=4)
    h.apply(trade(0, 0.3))
    h.extend([trade(0, 0.31)])
    assert h.watermark == 0 and h.insertion_point(0) == (2, True)


def test_an_empty_quoted_side_is_no_level() -> None:
    """A quote with nothing on one side leaves that side to the book."""
    s = MarketState()
    s.apply(book(1, [(0.5, 9.0)], [(0.53, 4.0)], 1, True))
    s.apply(quote(2, 0.51, 0.52, bid_qty=0.0, ask_qty=2.0))
    assert s.levels(Side.BUY) == [(D("0.5"), D("9.0"))]
    assert s.levels(Side.SELL) == [(D("0.52"), D("2.0")), (D("0.53"), D("4.0"))]
