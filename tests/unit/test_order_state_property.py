"""The order state machine: what its updates carry, ``can()``, the guard that
an order never fills beyond its quantity, and the invariants over random venue
reports (terminal states are never left, sequence numbers increase, FILLED
means fully filled)."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tradewind.events import OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from tradewind.execution.state import TRANSITIONS, IllegalTransition, OrderState

S = OrderStatus


def state(
    qty: str = "1", side: Side = Side.SELL, price: str | None = "0.35", exchange: str = "kraken"
) -> OrderState:
    st_ = OrderState.of(
        OrderRequest(
            id="c9",
            ts_event=5,
            client_order_id="c9",
            signal_id="s9",
            strategy="strat",
            exchange=exchange,
            symbol="ADA/USD",
            side=side,
            order_type=OrderType.LIMIT if price else OrderType.MARKET,
            quantity=D(qty),
            price=None if price is None else D(price),
            ts_recv=3,
        )
    )
    st_.exchange_order_id = "ex-9"
    return st_


def transitions(exchange: str, status: S) -> float:
    v = REGISTRY.get_sample_value(
        "tradewind_orders_total", {"exchange": exchange, "status": status.value}
    )
    return v or 0.0


def overfills(exchange: str) -> float:
    v = REGISTRY.get_sample_value(
        "tradewind_exchange_errors_total", {"exchange": exchange, "kind": "overfill"}
    )
    return v or 0.0


def test_updates_carry_the_order_its_reason_and_its_fills() -> None:
    """Consumers act on these fields (risk routes by exchange and symbol, the
    store keeps the reason): every one must be the order's own."""
    st_ = state("100", exchange="kraken-u")
    assert st_.strategy == "strat" and st_.ts_recv == 3
    before = {s: transitions("kraken-u", s) for s in (S.SUBMITTED, S.ACCEPTED, S.CANCELED)}
    assert st_.record_fill("f1", D("40"), D("0.35"))
    assert st_.record_fill("f2", D("25"), D("0.36"))
    ups = st_.transition(S.CANCELED, 77, "operator asked")
    assert [u.status for u in ups] == [S.SUBMITTED, S.ACCEPTED, S.CANCELED]
    assert [u.reason for u in ups] == ["", "", "operator asked"], "the reason is the final step's"
    assert {s: transitions("kraken-u", s) - n for s, n in before.items()} == dict.fromkeys(
        before, 1
    )
    last = ups[-1]
    assert last == OrderUpdate(
        id="c9:canceled:65",
        ts_event=77,
        client_order_id="c9",
        exchange_order_id="ex-9",
        exchange="kraken-u",
        symbol="ADA/USD",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        status=S.CANCELED,
        quantity=D("100"),
        filled_qty=D("65"),
        avg_price=D("0.35384615"),
        price=D("0.35"),
        reason="operator asked",
        seq=3,
        ts_recv=3,
    )
    assert st_.remaining == D("35")


def test_market_order_update_has_no_price_and_no_average_before_a_fill() -> None:
    st_ = state("2", side=Side.BUY, price=None, exchange="bybit")
    [u] = st_.transition(S.SUBMITTED, 1)
    assert (u.price, u.avg_price, u.side, u.order_type) == (None, None, Side.BUY, OrderType.MARKET)
    assert (u.filled_qty, u.id, u.exchange, u.reason) == (D(0), "c9:submitted:0", "bybit", "")


@pytest.mark.parametrize("src", list(S))
def test_can_answers_from_the_transition_table(src: S) -> None:
    st_ = state()
    st_.status = src
    for dst in S:
        assert st_.can(dst) is (dst in TRANSITIONS[src])
    assert st_.can(S.CANCELED) is (src in (S.ACCEPTED, S.PARTIALLY_FILLED))
    assert not any(st_.can(d) for d in S) if src.terminal else any(st_.can(d) for d in S)


def test_a_fill_beyond_the_quantity_is_refused_and_counted() -> None:
    st_ = state("1", exchange="ovf")
    before = overfills("ovf")
    assert st_.record_fill("f1", D("0.6"), D("1"))
    with capture_logs() as logs:
        assert not st_.record_fill("f2", D("0.5"), D("1"))
    assert overfills("ovf") == before + 1
    assert logs == [
        {
            "event": "fill beyond the order's quantity refused",
            "client_order_id": "c9",
            "fill_id": "f2",
            "filled_qty": "0.6",
            "qty": "0.5",
            "quantity": "1",
            "log_level": "warning",
        }
    ]
    assert st_.filled_qty == D("0.6") and st_.fill_ids == ["f1"]
    assert st_.record_fill("f3", D("0.4"), D("2"))
    assert st_.filled_qty == D("1") and st_.avg_price == D("1.4")


def test_a_refused_transition_is_logged_with_the_order() -> None:
    st_ = state()
    st_.transition(S.REJECTED, 1)
    with capture_logs() as logs:
        assert st_.transition(S.ACCEPTED, 2) == []
    assert logs == [
        {
            "event": "illegal order transition refused",
            "client_order_id": "c9",
            "from_status": "rejected",
            "to_status": "accepted",
            "log_level": "warning",
        }
    ]
    with pytest.raises(IllegalTransition) as refused:
        st_.transition(S.ACCEPTED, 3, strict=True)
    assert str(refused.value) == "order c9: rejected -> accepted is not allowed"


def test_filled_needs_the_whole_quantity() -> None:
    st_ = state("1")
    st_.record_fill("f1", D("0.5"), D("1"))
    assert st_.transition(S.FILLED, 1) == []
    assert st_.status is S.NEW
    with pytest.raises(IllegalTransition) as refused:
        st_.transition(S.FILLED, 1, strict=True)
    assert (refused.value.src, refused.value.dst) == (S.NEW, S.FILLED)
    assert str(refused.value) == "order c9: new -> filled is not allowed"
    st_.record_fill("f2", D("0.5"), D("1"))
    assert [u.status for u in st_.transition(S.FILLED, 2)][-1] is S.FILLED


report = st.one_of(
    st.tuples(st.just("fill"), st.integers(1, 40), st.integers(1, 2000)),
    st.tuples(st.just("status"), st.sampled_from(list(S)), st.just(0)),
    st.tuples(st.just("dup"), st.integers(0, 5), st.just(0)),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(1, 60), st.lists(report, max_size=30))
def test_random_venue_reports_never_break_the_machine(
    units: int, reports: list[tuple[str, object, int]]
) -> None:
    """Fills, duplicated fills and any status in any order, as a venue (or a
    router syncing with one) may report them. Quantities in steps of 0.01 and
    prices both sides of 1."""
    qty = D(units) / 100
    st_ = state(str(qty))
    seqs: list[int] = []
    statuses: list[S] = [st_.status]
    fills: list[tuple[str, D]] = []
    for n, (kind, a, b) in enumerate(reports):
        before = st_.status
        if kind == "fill" and isinstance(a, int):
            fid = f"f{n}"
            q = D(a) / 100
            ok = st_.record_fill(fid, q, D(b) / 1000)
            assert ok is (sum((f[1] for f in fills), D(0)) + q <= qty)
            if ok:
                fills.append((fid, q))
            done = st_.filled_qty >= st_.quantity
            ups = st_.transition(S.FILLED if done else S.PARTIALLY_FILLED, n) if ok else []
        elif kind == "dup" and isinstance(a, int):
            if fills:
                fid, q = fills[a % len(fills)]
                assert not st_.record_fill(fid, q, D(1))
            ups = []
        else:
            assert isinstance(a, S)
            ups = st_.transition(a, n, "why")
        if before.terminal:
            assert ups == [] and st_.status is before
        for u in ups:
            seqs.append(u.seq)
            statuses.append(u.status)
            assert u.filled_qty == st_.filled_qty <= qty
            if u.status is S.FILLED:
                assert u.filled_qty == qty
            if u.status is S.PARTIALLY_FILLED:
                assert u.filled_qty > 0
        assert st_.filled_qty == sum((f[1] for f in fills), D(0))
        assert st_.filled_qty <= st_.quantity
    assert seqs == list(range(1, len(seqs) + 1))
    for a, b in itertools.pairwise(statuses):
        assert b in TRANSITIONS[a], f"{a} -> {b}"
