"""The terminal dashboard of ``tradewind trade``, and its plain-line form for
logs and pipes. Both only render a ``TradeView``; nothing here reads services."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tradewind.runtime.trade import TradeView

_FEED_STYLE = {
    "connected": "green",
    "resyncing": "yellow",
    "waiting": "yellow",
    "stale": "red",
    "disconnected": "red",
}
_STATE_STYLE = {"active": "green", "reducing": "yellow", "halted": "bold red"}


def _px(v: float | None) -> str:
    return "-" if v is None else f"{v:,.8g}"


def _dec(v: Decimal, places: int = 4) -> str:
    return f"{v:,.{places}f}"


def _qty(v: Decimal) -> str:
    return f"{v.normalize():f}" if v else "0"


def _signed(v: Decimal) -> Text:
    return Text(_dec(v), style="green" if v > 0 else "red" if v < 0 else "")


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f} ms"


def header(v: TradeView) -> Text:
    mode = "PAPER TRADING (simulated orders)" if v.execution == "paper" else v.execution.upper()
    t = Text()
    t.append(f" {mode} ", style="bold black on yellow" if v.execution == "paper" else "bold")
    t.append(f"  venue {v.venue}  up {v.uptime_s:,.0f} s  events {v.events_in:,}")
    return t


def render(v: TradeView) -> Group:
    """The whole dashboard: symbols, account and risk, activity."""
    sym = Table(title="Markets and positions", expand=True, header_style="bold")
    for name, justify in (
        ("symbol", "left"),
        ("last", "right"),
        ("bid", "right"),
        ("ask", "right"),
        ("feed", "left"),
        ("position", "right"),
        ("avg price", "right"),
        ("realized PnL (net)", "right"),
        ("unrealized PnL", "right"),
        ("PnL in", "left"),
        ("open orders", "right"),
    ):
        sym.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in v.symbols:
        feed = Text(s.feed, style=_FEED_STYLE.get(s.feed, ""))
        if s.reconnects:
            feed.append(f" ({s.reconnects} reconnects)")
        sym.add_row(
            f"{s.exchange}:{s.symbol}",
            _px(s.last),
            _px(s.bid),
            _px(s.ask),
            feed,
            _qty(s.position),
            _dec(s.avg_price, 2) if s.position else "-",
            _signed(s.realized_pnl),
            _signed(s.unrealized_pnl),
            s.currency,
            str(s.open_orders),
        )

    acct = Table(title="Account and risk", header_style="bold")
    acct.add_column("metric")
    acct.add_column("value", justify="right")
    state = Text(v.state.upper(), style=_STATE_STYLE.get(v.state, ""))
    if v.tripped_by:
        state.append(f" ({v.tripped_by})")
    acct.add_row(
        f"equity (PnL, {v.account_currency})" if v.account_currency else "equity (PnL)",
        _signed(v.equity),
    )
    acct.add_row("drawdown", _dec(v.drawdown))
    acct.add_row("risk state", state)
    for name, (used, limit) in v.limits.items():
        pct = float(used / limit * 100) if limit else 0.0
        acct.add_row(
            f"limit: {name.replace('_', ' ')}", f"{_dec(used, 2)} / {_dec(limit, 2)} ({pct:.0f}%)"
        )
    acct.add_row("signals / orders / fills", f"{v.signals:,} / {v.orders:,} / {v.fills:,}")
    acct.add_row("rejected by risk", f"{v.rejected:,}")
    acct.add_row("tick-to-order p50", _ms(v.latency_p50_ms))
    acct.add_row("tick-to-order p99", _ms(v.latency_p99_ms))

    recent = Text("\n".join(v.recent[-10:]) or "(nothing yet)")
    return Group(
        header(v),
        sym,
        acct,
        Panel(recent, title="Last signals, orders and fills", title_align="left"),
        Text(
            "keys: h halt · f halt and flatten · r resume    "
            "Ctrl-C: stop (cancels open orders, prints the summary); twice: exit at once"
        ),
    )


def plain(v: TradeView) -> str:
    """One log line per symbol plus one for the account: for pipes and files."""
    lines = []
    for s in v.symbols:
        lines.append(
            f"{s.exchange}:{s.symbol} last={_px(s.last)} bid={_px(s.bid)} ask={_px(s.ask)} "
            f"feed={s.feed} reconnects={s.reconnects} position={_qty(s.position)} "
            f"avg_price={_dec(s.avg_price, 2)} realized_pnl={_dec(s.realized_pnl)} "
            f"unrealized_pnl={_dec(s.unrealized_pnl)} currency={s.currency} "
            f"open_orders={s.open_orders}"
        )
    lines.append(
        f"account mode={v.execution} equity={_dec(v.equity)} {v.account_currency} "
        f"drawdown={_dec(v.drawdown)} "
        f"state={v.state} signals={v.signals} orders={v.orders} fills={v.fills} "
        f"rejected={v.rejected} tick_to_order_p50={_ms(v.latency_p50_ms)} "
        f"p99={_ms(v.latency_p99_ms)}"
    )
    return "\n".join(lines)
