"""The order state machine: legal paths, implied states, refusals, ids."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from prometheus_client import REGISTRY

from tradewind.events import OrderRequest, OrderStatus, OrderType, Side
from tradewind.execution.state import TRANSITIONS, IllegalTransition, OrderState

S = OrderStatus


def state(qty: str = "1") -> OrderState:
    return OrderState.of(
        OrderRequest(
            id="c1",
            ts_event=1,
            client_order_id="c1",
            signal_id="s1",
            strategy="t",
            exchange="x",
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=D(qty),
            price=D("100"),
        )
    )


def illegal(src: S, dst: S) -> float:
    v = REGISTRY.get_sample_value(
        "tradewind_order_illegal_transitions_total",
        {"from_status": src.value, "to_status": dst.value},
    )
    return v or 0.0


def test_full_happy_path_emits_one_update_per_transition() -> None:
    st = state("1")
    ups = st.transition(S.SUBMITTED, 1) + st.transition(S.ACCEPTED, 2)
    st.record_fill("f1", D("0.4"), D("100"))
    ups += st.transition(S.PARTIALLY_FILLED, 3)
    st.record_fill("f2", D("0.6"), D("101"))
    ups += st.transition(S.FILLED, 4)
    assert [u.status for u in ups] == [S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED]
    assert [u.seq for u in ups] == [1, 2, 3, 4]
    assert ups[-1].filled_qty == D("1") and ups[-1].avg_price == D("100.6")
    assert [u.id for u in ups] == [
        "c1:submitted:0",
        "c1:accepted:0",
        "c1:partially_filled:0.4",
        "c1:filled:1",
    ]


def test_skipped_states_are_filled_in() -> None:
    st = state()
    st.record_fill("f1", D("1"), D("100"))
    ups = st.transition(S.FILLED, 5)
    assert [u.status for u in ups] == [S.SUBMITTED, S.ACCEPTED, S.FILLED]


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([S.SUBMITTED, S.ACCEPTED, S.CANCELED], S.FILLED),
        ([S.SUBMITTED, S.REJECTED], S.ACCEPTED),
        ([S.SUBMITTED, S.ACCEPTED], S.SUBMITTED),
        ([S.SUBMITTED, S.ACCEPTED, S.EXPIRED], S.CANCELED),
        ([S.SUBMITTED, S.ACCEPTED], S.REJECTED),
    ],
)
def test_illegal_transitions_are_refused_and_counted(path: list[S], bad: S) -> None:
    st = state()
    for s in path:
        assert st.transition(s, 1)
    before = illegal(st.status, bad)
    assert st.transition(bad, 2) == []
    assert st.status is path[-1]
    assert illegal(path[-1], bad) == before + 1
    with pytest.raises(IllegalTransition):
        st.transition(bad, 2, strict=True)


def test_terminal_states_have_no_exit() -> None:
    for s in S:
        assert (TRANSITIONS[s] == frozenset()) == s.terminal


def test_duplicate_reports_are_no_ops() -> None:
    st = state("2")
    st.transition(S.ACCEPTED, 1)
    assert st.transition(S.ACCEPTED, 2) == []
    assert st.record_fill("f1", D("1"), D("100"))
    assert not st.record_fill("f1", D("1"), D("100"))
    assert len(st.transition(S.PARTIALLY_FILLED, 3)) == 1
    assert st.transition(S.PARTIALLY_FILLED, 4) == []
    assert st.filled_qty == D("1")


def test_partial_fill_without_quantity_is_refused() -> None:
    st = state()
    st.transition(S.ACCEPTED, 1)
    before = illegal(S.ACCEPTED, S.PARTIALLY_FILLED)
    assert st.transition(S.PARTIALLY_FILLED, 2) == []
    assert illegal(S.ACCEPTED, S.PARTIALLY_FILLED) == before + 1
