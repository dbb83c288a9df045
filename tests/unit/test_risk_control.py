"""Signed control commands: only the token holder can halt or resume, and a
captured command cannot be replayed or altered."""

from __future__ import annotations

import time

import msgspec

from tradewind.config import RiskSettings
from tradewind.control import ControlVerifier, Verdict, make_control
from tradewind.events import Control, TradingState
from tradewind.exchanges.instruments import load_instruments
from tradewind.risk.commands import handle
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
