"""The paper exchange on bar data (``execution.paper.bar_fills``): market orders at
the next bar's open, limits when the bar's range reaches them, the path rule,
slippage in ticks, the volume cap, and the same fills whether an order comes
before or after the bars past its arrival."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from tests.unit.test_paper_exchange import fills, order, statuses
from tradewind.config import PaperSettings
from tradewind.events import Bar, Event, Fill, Liquidity, OrderStatus, Side, TimeInForce, Trade
from tradewind.exchanges.instruments import load_instruments
from tradewind.execution.paper.bar_fills import path_offsets
from tradewind.execution.paper.exchange import PaperExchange

DAY = 86_400 * 10**9
T0 = 1_600_000_000 * 10**9
S = OrderStatus


def bar(i: int, o: float, h: float, lo: float, c: float, v: float = 100.0) -> Bar:
    start = T0 + i * DAY
    return Bar(
        id=f"b{i}",
        ts_event=start + DAY,
        exchange="binance",
        symbol="BTCUSDT",
        interval_s=86_400.0,
        ts_open=start,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        trades=0,
        ts_recv=1,
    )


BARS = [
    bar(0, 100, 110, 95, 105),
    bar(1, 106, 108, 99, 100),  # closes down: high before low
    bar(2, 101, 104, 97, 103),
    bar(3, 90, 92, 85, 91),  # gaps down
]


def paper(**kw: Any) -> PaperExchange:
    base: dict[str, Any] = {"latency_ms": 5.0, "latency_jitter_ms": 0.0}
    return PaperExchange(PaperSettings(**{**base, **kw}), load_instruments())


def at_close(i: int) -> int:
    """An order decided on bar ``i``'s close."""
    return BARS[i].ts_event


def play(px: PaperExchange, orders: list[Any], *, late: bool) -> list[Event]:
    out: list[Event] = []
    if late:
        out += px.on_markets(BARS)
        for o in orders:
            out += px.submit(o)
    else:
        for o in orders:
            out += px.submit(o)
        out += px.on_markets(BARS)
    return out


@pytest.mark.parametrize("late", [False, True])
def test_market_order_fills_at_the_next_bar_open(late: bool) -> None:
    px = paper()
    out = play(px, [order("m1", Side.BUY, "0.5", ts=at_close(0))], late=late)
    assert fills(out, "m1") == [(D("106"), D("0.5"), D("0.05300000"), Liquidity.TAKER)]
    fill = next(e for e in out if isinstance(e, Fill))
    assert fill.ts_event == BARS[1].ts_open + 5_000_000
    assert statuses(out, "m1")[-1] is S.FILLED


@pytest.mark.parametrize("late", [False, True])
def test_limit_rests_until_the_range_reaches_it(late: bool) -> None:
    px = paper()
    # Bar 1 goes down to 99 (a buy at 99.5 fills there, at its price, as maker).
    out = play(px, [order("l1", Side.BUY, "1", ts=at_close(0), price="99.5")], late=late)
    assert fills(out, "l1") == [(D("99.5"), D("1"), D("0.01990000"), Liquidity.MAKER)]
    fill = next(e for e in out if isinstance(e, Fill))
    low_at, high_at = path_offsets(BARS[1])
    assert high_at < low_at  # a bar that closed down: open, high, low, close
    assert fill.ts_event == low_at


@pytest.mark.parametrize("late", [False, True])
def test_a_limit_the_open_crosses_takes_at_the_open_and_a_gap_fills_at_the_open(
    late: bool,
) -> None:
    px = paper()
    orders = [
        order("x1", Side.BUY, "1", ts=at_close(0), price="107"),  # bar 1 opens at 106
        order("g1", Side.BUY, "1", ts=at_close(1), price="93"),  # rests; bar 3 opens at 90
    ]
    out = play(px, orders, late=late)
    assert fills(out, "x1") == [(D("106"), D("1"), D("0.10600000"), Liquidity.TAKER)]
    assert fills(out, "g1") == [(D("90"), D("1"), D("0.01800000"), Liquidity.MAKER)]


def test_slippage_in_ticks_and_post_only() -> None:
    px = paper(bar_slippage_ticks=3)
    out = px.submit(order("s1", Side.SELL, "1", ts=at_close(0)))
    out += px.submit(
        order("p1", Side.BUY, "1", ts=at_close(0), price="107", tif=TimeInForce.POST_ONLY)
    )
    out += px.on_markets(BARS[:2])
    tick = load_instruments().get("binance", "BTCUSDT").tick_size
    assert fills(out, "s1")[0][0] == D(106) - 3 * tick
    assert statuses(out, "p1")[-1] is S.REJECTED


def test_volume_cap_limits_each_bar() -> None:
    px = paper(bar_volume_fraction=D("0.01"))  # 1 of each 100-volume bar
    out = px.submit(order("m1", Side.BUY, "3", ts=at_close(0)))
    out += px.submit(order("l1", Side.BUY, "3", ts=at_close(0), price="120"))
    out += px.on_markets(BARS)
    assert [q for _, q, _, _ in fills(out, "m1")] == [D("1")]
    assert statuses(out, "m1")[-1] is S.EXPIRED
    assert [q for _, q, _, _ in fills(out, "l1")] == [D("1"), D("1"), D("1")]


def test_bars_are_ignored_where_trades_are_matched() -> None:
    px = paper()
    t = Trade(
        id="t1",
        ts_event=T0,
        exchange="binance",
        symbol="BTCUSDT",
        price=100.0,
        qty=1.0,
        side=Side.BUY,
        trade_id="1",
        ts_recv=1,
    )
    px.on_market(t)
    assert px.on_markets(BARS) == []
    assert not px.bar_fills.applies(("binance", "BTCUSDT"))


def _daily_bars() -> list[Bar]:
    from tests.conftest import market_file
    from tradewind.exchanges.csv_source import csv_parser_for
    from tradewind.exchanges.formats import detect_format

    path = market_file("binance_spot_btcusdt_1d_2020.csv")
    parser = csv_parser_for(path, detect_format(path))
    out: list[Bar] = []
    for line in path.read_bytes().splitlines():
        out += [e for e in parser.parse(line, 1) if isinstance(e, Bar)]
    return out


def _bar_orders(bars: list[Bar]) -> list[Bar | Any]:
    """The bars with orders between them: market orders on a close, limits
    resting below and above it, and late orders (decided bars ago, so they
    are matched against the retained bars)."""
    out: list[Bar | Any] = []
    for i, b in enumerate(bars):
        out.append(b)
        if i % 3:
            continue
        k = i // 3
        side = Side.BUY if k % 2 == 0 else Side.SELL
        decided = bars[max(i - (k % 4) * 5, 0)].ts_event
        if k % 3 == 0:
            out.append(order(f"m{k}", side, "0.01", ts=decided))
        else:
            off = D(1) - D("0.02") * (1 if side is Side.BUY else -1)
            price = (D(repr(b.close)) * off).quantize(D("0.01"))
            out.append(order(f"l{k}", side, "0.01", ts=decided, price=str(price)))
    return out


@pytest.mark.parametrize("crash_at", [5, 130, 301, 420])
async def test_bar_state_survives_a_restart(monkeypatch: pytest.MonkeyPatch, crash_at: int) -> None:
    """Save after every step as the execution service does, drop the exchange
    at ``crash_at`` and restore a fresh one from the bus: everything after is
    what the undisturbed exchange produced, on the shipped daily bar file. A
    small bar window and chunk make the slot ring turn over."""
    from tradewind.bus import MemoryBus
    from tradewind.execution.paper import bar_fills, store
    from tradewind.execution.paper.store import PaperStore

    monkeypatch.setattr(bar_fills, "KEEP_BARS", 40)
    monkeypatch.setattr(store, "KEEP_BARS", 40)
    monkeypatch.setattr(store, "BAR_CHUNK", 8)
    items = _bar_orders(_daily_bars())
    assert len(items) > crash_at + 50

    def feed(px: PaperExchange, it: Any) -> list[Event]:
        return px.on_market(it) if isinstance(it, Bar) else px.submit(it)

    calm = paper()
    expected = [feed(calm, it) for it in items]
    bus = MemoryBus()
    px = paper()
    saver = PaperStore(px, "paper:t")
    for it in items[:crash_at]:
        feed(px, it)
        for k, v in saver.changes().items():
            await bus.put_state(k, v)
        saver.saved()
    again = paper()
    assert await PaperStore(again, "paper:t").restore(bus)
    assert list(again.bar_fills.bars[("binance", "BTCUSDT")]) == list(
        px.bar_fills.bars[("binance", "BTCUSDT")]
    )
    got = [feed(again, it) for it in items[crash_at:]]
    assert got == expected[crash_at:]
    assert sum(isinstance(e, Fill) for out in got for e in out) > 10

    bars_lost = MemoryBus()
    for k, v in bus._state.items():
        if ":b:" not in k and ":bc:" not in k:
            await bars_lost.put_state(k, v)
    blind = paper()
    assert await PaperStore(blind, "paper:t").restore(bars_lost)
    assert [feed(blind, it) for it in items[crash_at:]] != expected[crash_at:], (
        "without the saved bars the rest differs (the test can fail)"
    )


def test_a_bar_that_fills_an_order_bumps_the_version_and_retires_the_order() -> None:
    """The store saves on a version change, and a finished order leaves
    ``orders`` for ``done``: a bar fill must do both like a book fill."""
    px = paper()
    px.on_market(BARS[0])
    px.submit(order("m1", Side.BUY, "0.5", ts=at_close(0)))
    before = px.version
    out = px.on_market(BARS[1])
    assert statuses(out, "m1")[-1] is S.FILLED
    assert px.version > before
    assert "m1" not in px.orders and "m1" in px.done
