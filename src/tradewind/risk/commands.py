"""Operator commands as risk executes them: verify, act, reply.

Every command, accepted or not, gets a ``ControlReply`` so the CLI never waits
in vain; a refused one says only why it was refused and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradewind.control import ControlVerifier, Verdict
from tradewind.events import Control, ControlReply
from tradewind.risk.engine import RiskEngine


def status_payload(engine: RiskEngine) -> dict[str, Any]:
    """State, positions, exposure, PnL and limits used; money as strings."""
    pf = engine.portfolio
    exp = engine.worst_exposure() or (Decimal(0), Decimal(0))
    eq = engine.equity()
    positions = [
        {
            "exchange": p.exchange,
            "symbol": p.symbol,
            "qty": str(p.qty),
            "avg_price": str(p.avg_price),
            "mark": "" if p.mark is None else str(p.mark),
            "realized_pnl": str(p.realized_pnl),
            "unrealized_pnl": str(p.unrealized_pnl),
            "fees": str(p.fees),
            "currency": p.currency,
        }
        for _k, p in sorted(pf.positions.items())
    ]
    limits = {
        name: {
            "used": str(used),
            "limit": str(limit),
            "ratio": f"{(used / limit) if limit else Decimal(0):.4f}",
        }
        for name, (used, limit) in engine.utilisation().items()
    }
    return {
        "state": engine.state.value,
        "tripped_by": engine.tripped_by,
        "flattening": engine.flattening,
        "open_orders": len(engine.orders),
        "positions": positions,
        "exposure": {"gross": str(pf.gross_exposure), "net": str(pf.net_exposure)},
        "worst_case_exposure": {"gross": str(exp[0]), "net": str(exp[1])},
        "pnl_by_currency": {c: t.to_json() for c, t in pf.totals().items()},
        "pnl": {
            "equity": str(eq),
            "account_currency": engine.settings.account_currency,
            "day_start_equity": str(engine.loss.day_start_equity),
            "peak_equity": str(engine.loss.peak),
        },
        "limits": limits,
    }


def handle(
    engine: RiskEngine, verifier: ControlVerifier, c: Control, now_ns: int
) -> tuple[ControlReply, str]:
    """Execute one command; the reply and the result label for the metrics."""
    verdict = verifier.verify(c, now_ns)
    if verdict is not Verdict.OK:
        return _reply(c, False, f"refused: {verdict.value}", {}), verdict.value
    if c.command == "halt":
        flatten = c.args.get("flatten", "").lower() in ("1", "true", "yes")
        cancels, closes = engine.halt(c.id, flatten)
        detail = f"halted; {cancels} open orders canceled, {closes} positions closing"
    elif c.command == "resume":
        engine.resume(c.id)
        detail = "resumed; trading is active"
    else:
        detail = f"trading is {engine.state.value}"
    return _reply(c, True, detail, status_payload(engine)), "ok"


def _reply(c: Control, ok: bool, detail: str, payload: dict[str, Any]) -> ControlReply:
    return ControlReply(
        id=f"reply:{c.id}",
        ts_event=c.ts_event,
        request_id=c.id,
        ok=ok,
        detail=detail,
        payload=payload,
    )
