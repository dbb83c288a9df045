"""``tradewind run``: the whole pipeline in one process on the embedded default."""

from __future__ import annotations

import contextlib
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tradewind.cli import app
from tradewind.cli import options as opt
from tradewind.cli.checks import DataFile, check_db_path
from tradewind.cli.common import parse_speed, settings_or_exit
from tradewind.cli.errors import (
    RunFailed,
    UsageProblem,
    debugging,
    describe_failure,
    one_line_errors,
)
from tradewind.clock import ReplayClock
from tradewind.config import Settings
from tradewind.exchanges.csv_source import CsvReplaySource
from tradewind.observability.logging import configure_logging
from tradewind.runtime.embedded import RunSummary, run_embedded
from tradewind.runtime.loop import run_async
from tradewind.storage import runs
from tradewind.storage.postgres import url_with_password
from tradewind.storage.runs import RunRecord, new_run_id

_DEFAULT_DB = Path("tradewind.db")


def _db_path(db: str | None, env_url: str) -> tuple[Path | None, str]:
    """The SQLite file (None when the store is PostgreSQL) and the store URL:
    ``--db`` (a file or a ``postgresql://`` URL), else ``TRADEWIND_STORE__URL``
    when set, else ``tradewind.db``."""
    if db is not None:
        if runs.is_url(db):
            return None, db
        check_db_path(Path(db))
        return Path(db), f"sqlite:///{db}"
    if env_url and env_url != "sqlite:///tradewind.db":
        if env_url.startswith("sqlite:///"):
            path = Path(env_url.removeprefix("sqlite:///"))
            check_db_path(path, "TRADEWIND_STORE__URL")
            return path, env_url
        if env_url.startswith(("postgresql://", "postgres://")):
            return None, env_url
        raise UsageProblem(
            "invalid setting TRADEWIND_STORE__URL: must start with sqlite:/// or postgresql://"
        )
    check_db_path(_DEFAULT_DB)
    return _DEFAULT_DB, f"sqlite:///{_DEFAULT_DB}"


def _remove_new_db(path: Path | None, existed: bool) -> None:
    """A failed run leaves no database it created (a rerun starts clean)."""
    if path is None or existed:
        return
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        with contextlib.suppress(OSError):
            p.unlink()


@app.command("run")
@one_line_errors
def run_command(
    data: list[Path] = opt.data_option(  # noqa: B008
        None,
        "Recorded data (repeatable); default: the bundled Binance BTCUSDT recording. "
        "Format, symbol and bar length are detected from the file's columns or name.",
    ),
    strategy: str = opt.STRATEGY,
    param: list[str] = opt.PARAM,
    set_: list[str] = opt.SET,
    fast: int | None = opt.FAST,
    slow: int | None = opt.SLOW,
    quantity: str | None = opt.QUANTITY,
    bar_interval: float | None = opt.BAR_INTERVAL,
    fmt: str | None = opt.FORMAT,
    symbol: str | None = opt.SYMBOL,
    exchange: str | None = opt.EXCHANGE,
    speed: str = typer.Option(
        "max",
        "--speed",
        metavar="FACTOR|max",
        help="1 = real time, 10 = ten times faster, max = no pauses (deterministic).",
    ),
    db: str | None = opt.DB_RUN,
    quiet: bool = opt.QUIET,
) -> None:
    """Replay market data through all five services and print a summary."""
    replay_speed = parse_speed(speed)
    sections = opt.parse_sets(set_)
    env = settings_or_exit(**sections)
    files = opt.probe_all(data, fmt, symbol, exchange, bar_interval, default_bundled=True)
    params, file_interval = opt.strategy_params(
        strategy,
        param,
        files,
        bar_interval,
        {"fast": fast, "slow": slow, "quantity": opt.quantity_value(quantity)},
    )
    db_path, store_url = _db_path(db, env.store.url.get_secret_value())
    overrides: dict[str, Any] = {k: dict(v) for k, v in sections.items()}
    overrides.update(
        feed={
            **overrides.get("feed", {}),
            "source": "replay",
            "data": [f.path for f in files],
            "speed": replay_speed,
        },
        store={**overrides.get("store", {}), "url": store_url},
        strategy={"name": strategy, "params": params},
        bus={**overrides.get("bus", {}), "kind": "memory"},
    )
    settings = settings_or_exit(**overrides)
    configure_logging(settings, console=True)
    clock = ReplayClock()
    source = CsvReplaySource(
        [f.path for f in files],
        speed=replay_speed,
        clock=clock,
        fmt=fmt,
        symbol=symbol,
        exchange=exchange,
        interval_s=file_interval,
    )
    existed = db_path is not None and db_path.exists()
    started_ns = time.time_ns()
    console = Console(stderr=True)
    try:
        if quiet:
            summary = run_async(run_embedded(settings, source=source, clock=clock))
        else:
            with Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("messages"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("replay", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = run_async(run_embedded(settings, progress, source, clock))
    except (KeyboardInterrupt, SystemExit):
        _remove_new_db(db_path, existed)
        raise
    except Exception as exc:
        _remove_new_db(db_path, existed)
        if debugging():
            raise
        raise RunFailed(
            describe_failure(exc, db=None if db_path is None else str(db_path), strategy=strategy)
        ) from None
    run_id = new_run_id(started_ns)
    rec = RunRecord(
        run_id=run_id,
        command="run",
        started_ns=started_ns,
        finished_ns=time.time_ns(),
        strategy=strategy,
        params=params,
        data=[f.to_json() for f in files],
        summary=summary_json(summary),
    )
    target = db_path if db_path is not None else store_target(settings)
    record_run(target, rec)
    table = summary_table(
        summary, runs.shown(target), files=files, strategy=strategy, params=params, run_id=run_id
    )
    Console().print(table)


def store_target(settings: Settings) -> runs.Target:
    """The database a run wrote, as ``storage.runs`` reaches it: the SQLite
    file, or the PostgreSQL URL with the password setting applied."""
    url = settings.store.url.get_secret_value()
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if settings.store.password is not None:
        return url_with_password(url, settings.store.password.get_secret_value())
    return url


def record_run(target: runs.Target, rec: RunRecord) -> None:
    """The run's row, after its events: a database that took the events but
    refuses this row fails the run in one line."""
    try:
        runs.record(target, rec)
    except Exception as exc:
        if debugging():
            raise
        raise RunFailed(
            f"the run finished but its runs row was not stored in {runs.shown(target)}: {exc}"
        ) from None


def summary_json(s: RunSummary) -> dict[str, Any]:
    """What ``tradewind show`` prints again: the outcome, rejections by reason,
    rows added per table, latency and wall time."""
    return {
        **s.outcome(),
        "rejections": dict(s.rejections),
        "rows": dict(s.rows),
        "latency_p50_ms": s.latency_p50_ms,
        "latency_p99_ms": s.latency_p99_ms,
        "duration_s": round(s.duration_s, 3),
    }


def _money(v: Decimal) -> str:
    return f"{v:,.4f}"


def _counts(c: dict[str, int]) -> str:
    total = sum(c.values())
    if not total:
        return "0"
    return f"{total:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(c.items()))})"


def summary_table(
    s: RunSummary,
    db: Path | str | None = None,
    *,
    files: list[DataFile] | None = None,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Table:
    t = Table(title="Tradewind run", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows: list[tuple[str, str]] = []
    if run_id is not None:
        rows.append(("run id", run_id))
    for f in files or []:
        rows.append(("data", f.describe()))
    if strategy is not None:
        shown = ", ".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        rows.append(("strategy", f"{strategy} ({shown})" if shown else strategy))
    rows += [
        ("events in", f"{s.events_in:,}"),
        ("bad messages skipped", _counts(s.parse_errors)),
        ("messages ignored", _counts(s.ignored)),
        ("bars", f"{s.bars:,}"),
        ("signals", f"{s.signals:,}"),
        ("orders approved", f"{s.approved:,}"),
        ("orders rejected", _counts(s.rejections) if s.rejections else f"{s.rejected:,}"),
        ("fills", f"{s.fills:,}"),
    ]
    for p in s.positions:
        unit = " contracts" if p.inverse else ""
        rows.append((f"position {p.exchange}:{p.symbol}", f"{p.qty.normalize():f}{unit}"))
    for cur, tot in s.totals.items():
        named = f" ({cur})" if cur else ""
        rows += [
            (f"fees{named}", _money(tot.fees)),
            (f"realized PnL{named}", _money(tot.realized_pnl)),
            (f"unrealized PnL{named}", _money(tot.unrealized_pnl)),
        ]
    rows += [
        ("tick-to-order p50", "n/a" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.3f} ms"),
        ("tick-to-order p99", "n/a" if s.latency_p99_ms is None else f"{s.latency_p99_ms:.3f} ms"),
        ("wall time", f"{s.duration_s:.2f} s"),
    ]
    if db is not None:
        added = sum(s.rows.values())
        rows.append(("database", f"{db} ({added:,} rows added)"))
    for k, v in rows:
        t.add_row(k, v)
    return t
