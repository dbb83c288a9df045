"""Signed control commands: only the token holder can halt or resume, and a
captured command cannot be replayed or altered."""

from __future__ import annotations

import time
from decimal import Decimal as D

import msgspec

from tradewind.config import RiskSettings
from tradewind.control import ControlVerifier, Verdict, make_control
from tradewind.events import (
    Control,
    Fill,
    Liquidity,
    OrderRequest,
    OrderType,
    Side,
    TradingState,
)
from tradewind.exchanges.instruments import load_instruments
from tradewind.risk.commands import handle, status_payload
from tradewind.risk.engine import RiskEngine

TOKEN = "s3cret-token"
NS = 1_000_000_000


def test_verifier_accepts_once_and_refuses_forgeries_and_replays() -> None:
    now = time.time_ns()
    v = ControlVerifier(TOKEN, max_age_s=30)
    c = make_control(TOKEN, "halt", {"flatten": "true"}, now)
    assert TOKEN not in msgspec.json.encode(c).decode()
    assert v.verify(c, now) is Verdict.OK
    assert v.verify(c, now + NS) is Verdict.REPLAYED
    altered = msgspec.structs.replace(c, args={"flatten": "false"}, id="other")
    assert v.verify(altered, now) is Verdict.BAD_SIGNATURE
    wrong = make_control("not-the-token", "halt", {}, now)
    assert v.verify(wrong, now) is Verdict.BAD_SIGNATURE
    old = make_control(TOKEN, "resume", {}, now - 31 * NS)
    assert v.verify(old, now) is Verdict.EXPIRED
    assert v.verify(make_control(TOKEN, "explode", {}, now), now) is Verdict.UNKNOWN_COMMAND
    assert ControlVerifier(None, 30).verify(c, now) is Verdict.NO_TOKEN


def test_refused_commands_change_nothing_and_accepted_ones_act() -> None:
    e = RiskEngine(RiskSettings(), load_instruments())
    v = ControlVerifier(TOKEN, max_age_s=30)
    now = time.time_ns()
    forged = Control(id="x", ts_event=now, command="halt", signature="ab" * 32)
    reply, result = handle(e, v, forged, now)
    assert not reply.ok and result == "bad_signature" and e.state is TradingState.ACTIVE
    assert not e.drain()
    reply, result = handle(e, v, make_control(TOKEN, "halt", {}, now), now)
    assert reply.ok and result == "ok" and e.state is TradingState.HALTED
    assert reply.payload["state"] == "halted" and "limits" in reply.payload
    reply, _ = handle(e, v, make_control(TOKEN, "status", {}, now), now)
    assert reply.ok and reply.payload["state"] == "halted"
    reply, _ = handle(e, v, make_control(TOKEN, "resume", {}, now), now)
    assert reply.ok and e.state is TradingState.ACTIVE


def test_used_ids_survive_a_snapshot_and_expire_with_the_window() -> None:
    """What risk commits with its state: a restarted or standby risk that
    restores it refuses the replay of a command accepted before."""
    now = time.time_ns()
    v = ControlVerifier(TOKEN, max_age_s=30)
    c = make_control(TOKEN, "resume", {}, now)
    assert v.verify(c, now) is Verdict.OK
    saved = msgspec.json.decode(msgspec.json.encode(v.snapshot()))
    fresh = ControlVerifier(TOKEN, max_age_s=30)
    fresh.restore(saved)
    assert fresh.verify(c, now + 12 * NS) is Verdict.REPLAYED
    assert ControlVerifier(TOKEN, max_age_s=30).verify(c, now + 12 * NS) is Verdict.OK
    later = make_control(TOKEN, "status", {}, now + 90 * NS)
    assert fresh.verify(later, now + 90 * NS) is Verdict.OK
    assert [i for i, _ in fresh.snapshot()] == [later.id], "ids past the window are dropped"


def _book() -> RiskEngine:
    """A long below its mark, a short at its mark, and one open buy elsewhere,
    inserted out of order so an unsorted listing would show."""
    e = RiskEngine(RiskSettings(), load_instruments())
    t0 = 1_723_161_255 * NS

    def fill(i: str, symbol: str, side: Side, qty: str, px: str, fee: str) -> Fill:
        return Fill(
            id=i,
            ts_event=t0,
            client_order_id=f"c{i}",
            exchange_order_id=f"e{i}",
            exchange="binance",
            symbol=symbol,
            side=side,
            price=D(px),
            qty=D(qty),
            fee=D(fee),
            fee_currency="USDT",
            liquidity=Liquidity.TAKER,
        )

    e.on_market("binance", "FTMUSDT", t0, 0.3)
    e.on_fill(fill("1", "FTMUSDT", Side.SELL, "100", "0.3", "0.03"))
    e.on_market("binance", "BTCUSDT", t0, 60000.0)
    e.on_fill(fill("2", "BTCUSDT", Side.BUY, "0.002", "60000", "0.12"))
    e.on_market("binance", "BTCUSDT", t0 + NS, 61000.0)
    buy = OrderRequest(
        id="o1",
        ts_event=t0,
        client_order_id="o1",
        signal_id="s1",
        strategy="t",
        exchange="coinbase",
        symbol="ETH-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.01"),
        price=D("2900"),
    )
    e.on_order(buy, D("2900"))
    return e


def test_status_reports_every_position_pnl_and_limit_in_money_strings() -> None:
    """The operator's view of the account: a key renamed, a field taken from
    the wrong place or the positions unsorted would mislead the one person
    who can halt trading. Figures by hand: BTC 0.002 marked 61000 (+2), FTM
    -100 at 0.3, fees 0.15; exposure 122 + 30, net 122 - 30; the open ETH buy
    (0.01 at 2900 = 29) adds to the worst case only."""
    e = _book()
    v = ControlVerifier(TOKEN, max_age_s=30)
    now = time.time_ns()
    c = make_control(TOKEN, "status", {}, now)
    reply, result = handle(e, v, c, now)
    assert result == "ok" and reply.ok and reply.detail == "trading is active"
    assert (reply.id, reply.request_id, reply.ts_event) == (f"reply:{c.id}", c.id, c.ts_event)
    p = reply.payload
    assert (p["state"], p["tripped_by"], p["flattening"], p["open_orders"]) == (
        "active",
        "",
        False,
        1,
    )
    pnl = dict(p["pnl"])
    assert pnl.pop("account_currency") == "USDT"
    assert {k: D(v) for k, v in pnl.items()} == {
        "equity": D("1.85"),
        "day_start_equity": 0,
        "peak_equity": D("1.85"),
    }
    by_currency = {c: {k: D(v) for k, v in t.items()} for c, t in p["pnl_by_currency"].items()}
    assert by_currency == {
        "USDT": {"realized_pnl": 0, "unrealized_pnl": 2, "fees": D("0.15"), "pnl": D("1.85")}
    }
    assert {k: D(v) for k, v in p["exposure"].items()} == {"gross": 152, "net": 92}
    assert {k: D(v) for k, v in p["worst_case_exposure"].items()} == {"gross": 181, "net": 121}
    fields = ["qty", "avg_price", "mark", "realized_pnl", "unrealized_pnl", "fees"]
    rows = [(q["exchange"], q["symbol"], *(D(q[f]) for f in fields)) for q in p["positions"]]
    assert rows == [
        ("binance", "BTCUSDT", D("0.002"), 60000, 61000, 0, 2, D("0.12")),
        ("binance", "FTMUSDT", -100, D("0.3"), D("0.3"), 0, 0, D("0.03")),
    ]
    assert all(q["currency"] == "USDT" for q in p["positions"])
    assert all(set(q) == {"exchange", "symbol", "currency", *fields} for q in p["positions"])
    limits = p["limits"]
    assert limits["gross_exposure"] == {"used": "181.0000", "limit": "25000", "ratio": "0.0072"}
    assert limits["open_orders"] == {"used": "1", "limit": "20", "ratio": "0.0500"}
    assert limits["net_exposure"]["ratio"] == "0.0048"
    assert set(limits) == set(e.utilisation())


def test_status_of_a_position_without_a_mark_says_so_instead_of_none() -> None:
    e = _book()
    e.portfolio.positions[("binance", "BTCUSDT")].mark = None
    [btc, _] = status_payload(e)["positions"]
    assert btc["mark"] == "" and D(btc["qty"]) == D("0.002")


def test_halt_flattens_for_every_spelling_of_yes_and_only_then() -> None:
    """``flatten`` is typed by a person: 1, true, TRUE, Yes all flatten; any
    other word halts without closing anything."""
    for word, closes in [("1", 2), ("true", 2), ("TRUE", 2), ("Yes", 2), ("no", 0), ("", 0)]:
        e = _book()
        v = ControlVerifier(TOKEN, max_age_s=30)
        now = time.time_ns()
        args = {"flatten": word} if word else {}
        reply, result = handle(e, v, make_control(TOKEN, "halt", args, now), now)
        assert result == "ok" and reply.ok and e.state is TradingState.HALTED, word
        assert reply.detail == f"halted; 1 open orders canceled, {closes} positions closing"
        assert e.flattening is (closes > 0) and reply.payload["flattening"] is (closes > 0)
        assert reply.payload["tripped_by"] == "operator"
        reply, result = handle(e, v, make_control(TOKEN, "resume", {}, now), now)
        assert reply.detail == "resumed; trading is active" and e.state is TradingState.ACTIVE


def test_a_refused_command_says_why_and_carries_no_account_data() -> None:
    e = _book()
    v = ControlVerifier(TOKEN, max_age_s=30)
    now = time.time_ns()
    forged = Control(id="x", ts_event=now, command="halt", signature="ab" * 32)
    reply, result = handle(e, v, forged, now)
    assert (reply.ok, reply.detail, reply.payload, result) == (
        False,
        "refused: bad_signature",
        {},
        "bad_signature",
    )
    assert (reply.id, reply.request_id, reply.ts_event) == ("reply:x", "x", now)


def test_each_resume_is_recorded_under_its_own_command_id() -> None:
    """The store keeps one record per id: were two resumes recorded under the
    same id, a rebuild would replay only one of them."""
    e = _book()
    v = ControlVerifier(TOKEN, max_age_s=30)
    now = time.time_ns()
    ids = []
    for n in range(2):
        halt = make_control(TOKEN, "halt", {}, now + n)
        resume = make_control(TOKEN, "resume", {}, now + n)
        handle(e, v, halt, now + n)
        handle(e, v, resume, now + n)
        records = [x for x in e.drain() if isinstance(x, Control)]
        assert [(r.id, r.args["source"], r.args["action"]) for r in records] == [
            (f"applied:{halt.id}", halt.id, "halt"),
            (f"applied:{resume.id}", resume.id, "resume"),
        ]
        ids += [r.id for r in records]
    assert len(set(ids)) == 4


def test_status_answers_when_an_exposure_cannot_be_converted() -> None:
    """A position quoted in a currency without a conversion mark has no worst
    case in money; status still answers, with zeros there, rather than fail."""
    e = RiskEngine(RiskSettings(), load_instruments())
    e.on_fill(
        Fill(
            id="f1",
            ts_event=1_723_161_255 * NS,
            client_order_id="c1",
            exchange_order_id="e1",
            exchange="binance",
            symbol="XMRBTC",
            side=Side.BUY,
            price=D("0.005"),
            qty=D("2"),
            fee=D(0),
            fee_currency="BTC",
            liquidity=Liquidity.TAKER,
        )
    )
    assert e.worst_exposure() is None
    p = status_payload(e)
    assert p["worst_case_exposure"] == {"gross": "0", "net": "0"}
    assert D(p["positions"][0]["qty"]) == 2
