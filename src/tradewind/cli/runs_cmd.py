"""``tradewind runs`` and ``tradewind show RUN_ID``: the runs a database holds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from tradewind.cli import app
from tradewind.cli import options as opt
from tradewind.cli.common import settings_or_exit
from tradewind.cli.errors import RunFailed, UsageProblem, one_line_errors
from tradewind.storage import runs
from tradewind.storage.postgres import url_with_password

_DB = opt.DB_READ
T = TypeVar("T")
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _target(db: str) -> runs.Target:
    """``--db`` as ``storage.runs`` reaches it; a PostgreSQL URL takes the
    password setting (``TRADEWIND_STORE__PASSWORD``) as ``run`` does."""
    if not runs.is_url(db):
        path = Path(db)
        if not path.is_file():
            raise UsageProblem(f"--db {db}: no such database file")
        return path
    password = settings_or_exit().store.password
    return db if password is None else url_with_password(db, password.get_secret_value())


def _read(db: str, read: Callable[[runs.Target], T]) -> T:
    target = _target(db)
    try:
        return read(target)
    except runs.NoRunsTable:
        raise UsageProblem(
            f"--db {runs.shown(db)}: holds no runs table (written before run ids; "
            "'tradewind migrate' with TRADEWIND_STORE__URL set to it adds it)"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise UsageProblem(f"--db {db}: not a Tradewind database ({exc})") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise RunFailed(f"--db {runs.shown(db)}: cannot read runs ({exc})") from None


def _num(v: Any) -> str:
    """Stored decimals as people write them (``19.3688``, not ``19.36880000000000``)."""
    if isinstance(v, str):
        try:
            return f"{Decimal(v).normalize():f}"
        except InvalidOperation:
            return v
    return str(v)


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(p.items()))


def _pnl(summary: dict[str, Any]) -> str:
    """A backtest's PnL in its curve's currency, else one figure per settlement
    currency: never a sum across currencies."""
    if summary.get("currency") and "pnl" in summary:
        return f"{_short(summary['pnl'])} {summary['currency']}"
    by = summary.get("by_currency")
    if isinstance(by, dict) and by:
        return "; ".join(
            f"{_short(t.get('pnl', ''))} {cur}".rstrip() for cur, t in sorted(by.items())
        )
    return _num(summary.get("realized_pnl", summary.get("pnl", "")))


def _short(v: Any) -> str:
    """At most 8 decimals: a satoshi, the smallest amount a coin PnL shows."""
    try:
        return _num(str(Decimal(str(v)).quantize(Decimal("1e-8"))))
    except InvalidOperation:
        return str(v)


@app.command("runs")
@one_line_errors
def runs_command(db: str = _DB, as_json: bool = _JSON) -> None:
    """List the runs in a database: when, data, strategy, parameters, results."""
    recs = _read(db, runs.list_runs)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in recs], indent=2))
        return
    t = Table(title=f"Runs in {runs.shown(db)}", header_style="bold")
    for col in ("run id", "started", "command", "data", "strategy", "signals", "fills", "PnL"):
        t.add_column(col, justify="right" if col in ("signals", "fills", "PnL") else "left")
    for r in recs:
        s = r.summary
        data = ", ".join(Path(d["path"]).name for d in r.data)
        pnl = _pnl(s)
        t.add_row(
            r.run_id,
            r.to_json()["started"],
            r.command,
            data,
            f"{r.strategy} ({_params(r.params)})",
            str(s.get("signals", "")),
            str(s.get("fills", "")),
            _num(pnl),
        )
    Console().print(t)


@app.command("show")
@one_line_errors
def show_command(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="A run id (or a unique prefix)."),
    db: str = _DB,
    as_json: bool = _JSON,
    limit: int = typer.Option(
        20, "--limit", min=0, metavar="N", help="Orders and fills listed (--json: all)."
    ),
) -> None:
    """Print a run's summary again, and the orders and fills it added."""
    rec = _read(db, lambda t: runs.find_run(t, run_id))
    if rec is None:
        where = runs.shown(db)
        raise UsageProblem(
            f"no run {run_id!r} in {where} ('tradewind runs --db {where}' lists them)"
        )
    stored = _read(db, lambda t: runs.run_rows(t, rec.run_id))
    if as_json:
        out = {
            **rec.to_json(),
            "stored": {"rows": stored.counts, "orders": stored.orders, "fills": stored.fills},
        }
        typer.echo(json.dumps(out, indent=2))
        return
    j = rec.to_json()
    t = Table(title=f"Run {rec.run_id}", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("command", rec.command)
    t.add_row("started", j["started"])
    for d in rec.data:
        t.add_row("data", f"{d['path']} ({d['format']}, {d['exchange']}:{d['symbol']})")
    t.add_row("strategy", f"{rec.strategy} ({_params(rec.params)})")
    for k, v in rec.summary.items():
        if k == "by_currency" and isinstance(v, dict):
            for cur, tot in sorted(v.items()):
                shown = ", ".join(f"{a.replace('_', ' ')} {_short(b)}" for a, b in tot.items())
                t.add_row(f"PnL in {cur}" if cur else "PnL", shown)
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in sorted(v.items())) or "0"
        elif isinstance(v, list):
            v = "; ".join(" ".join(map(str, x)) if isinstance(x, list) else str(x) for x in v)
        t.add_row(k.replace("_", " "), _num(v))
    t.add_row(
        "stored rows with this run id",
        ", ".join(f"{k} {v:,}" for k, v in stored.counts.items() if v) or "0",
    )
    console = Console()
    console.print(t)
    _listing(console, "orders", stored.orders, runs.ORDER_FIELDS, limit)
    _listing(console, "fills", stored.fills, runs.FILL_FIELDS, limit)


def _listing(
    console: Console, what: str, rows: list[dict[str, Any]], fields: tuple[str, ...], limit: int
) -> None:
    if not rows or not limit:
        return
    t = Table(title=f"{what} ({len(rows):,})", header_style="bold")
    for f in fields:
        t.add_column(f.replace("_", " "))
    for r in rows[:limit]:
        t.add_row(*(_num(r[f]) if r[f] is not None else "" for f in fields))
    console.print(t)
    if len(rows) > limit:
        console.print(f"… {len(rows) - limit:,} more {what} (--limit N, or --json for all)")
