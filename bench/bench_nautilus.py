"""Tradewind's backtest against NautilusTrader's on equal work: the same
decisions on the same ticks, proven by counts printed for both engines, and a
throughput ratio only when those counts agree.

Two comparisons (``--only trades|book``, both by default):

- **trades**: the recorded Binance BTCUSDT trades (shifted copies, ``--ticks``),
  1-second bars built by each engine ([start, end), closed by the first trade
  past the end, no bar for an interval without trades: NautilusTrader's
  ``right-open`` time bars without empty bars), EMA 4/12 crossover, long only.
  Each side's strategy makes the same crossovers from the same EMA arithmetic;
  orders are market orders of ``--quantity``, filled against trades in both
  (NautilusTrader with ``trade_execution`` on an L1 book; Tradewind's paper
  venue at the last trade, no latency, no slippage). The size is one both fill
  completely: 0.0001 BTC, just above the 5 USDT minimum notional that
  Tradewind's Binance rules enforce (NautilusTrader's test instrument has none).
- **book**: L2 deltas of the recorded Binance BTCUSDT depth stream with its REST
  snapshot, repeated (ids and times shifted, each copy re-synced by the
  snapshot) to at least ``--updates`` level updates, and a book-imbalance
  strategy on the best level (``bench/_book_imbalance.py`` in Tradewind,
  ``_nautilus_side.BookImbalance`` on NautilusTrader's own L2 book): the same
  book events, decisions, orders and fills walking the book in both.

Tradewind's risk limits are set so that they reject nothing NautilusTrader
accepts (rejections are printed and counted as a difference). Counts compared:
bars or book events, signals, orders, orders filled, filled quantity (and
fill events on the book); a difference of more than one (of one order's size
for the quantity), any rejection or denial, or an order not filled completely
refuses the ratio, names what differs and exits 1.

Tradewind's time is its whole pipeline run (reading and parsing the file,
five services); NautilusTrader's is ``BacktestEngine.run()`` only, its data
objects built beforehand: that favours NautilusTrader. Two more ratios are
printed beside it, so that both sides can be read on the same terms: with
NautilusTrader's loading (file to data objects, engine set-up) timed as
well, and with Tradewind's loading left out (reading and parsing the same
file with the backtest's own parser, timed after the run, best of three,
subtracted from its time).
NautilusTrader lives in its own venv (``--venv``, default under the system's
temporary directory); ``--install`` creates it and pip-installs
``nautilus_trader``. Without it the script says so and exits 0.

    python bench/bench_nautilus.py [--install] [--ticks 200000] [--updates 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ticks import MARKET_DATA
from bench_parse import batched
from bench_pipeline import machine
from bench_redis_pipeline import tape_events, write_tape
from tradewind.backtest import BacktestSpec, run_backtest
from tradewind.events import BookDelta
from tradewind.exchanges.formats import PARSERS, detect_format
from tradewind.exchanges.replay import ReplaySource

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path(tempfile.gettempdir()) / "tw-nautilus-venv"
DEPTH_FILE = MARKET_DATA / "binance_spot_btcusdt_combined_20240808.jsonl"
NAUTILUS_SIDE = HERE / "_nautilus_side.py"
BOOK_STRATEGY = f"{HERE / '_book_imbalance.py'}:L2BookImbalance"
TARGETS = {"trades": 1.5, "book": 1.0}

_BIG = "1000000000000"
OPEN_RISK: dict[str, Any] = {
    "max_position": _BIG,
    "max_order_notional": _BIG,
    "max_orders_per_second": 1_000_000,
    "max_orders_per_minute": 1_000_000,
    "max_gross_exposure": _BIG,
    "max_net_exposure": _BIG,
    "max_open_orders": 1_000_000,
    "fat_finger_pct": "100",
    "stale_after_s": 1e12,
    "max_daily_loss": _BIG,
    "max_drawdown": _BIG,
    "stopout_loss": _BIG,
    "loss_streak": 1_000_000,
    "cooldown_s": 0,
}
"""Risk limits NautilusTrader has no counterpart of, out of the way: its
pre-trade checks on a margin account with ample balance deny nothing here."""
EXACT_PAPER: dict[str, Any] = {"latency_ms": 0, "latency_jitter_ms": 0, "slippage_bps": 0}
"""NautilusTrader's backtest venue fills at submission, at the book's price."""

TRADE_KEYS = ("bars", "signals", "orders", "orders_filled", "filled_qty")
BOOK_KEYS = ("books", "signals", "orders", "orders_filled", "fill_events", "filled_qty")
"""Compared. Fill events are printed for trades but not compared there:
NautilusTrader's L1 book from trades holds only the last trade's size and
fills the rest of a market order one tick further, as further fill events."""


def differing(
    tradewind: Mapping[str, Any],
    nautilus: Mapping[str, Any],
    keys: Sequence[str],
    quantity: Decimal,
) -> list[str]:
    """What differs by more than one (one order of ``quantity`` for a filled
    quantity), each as ``name (Tradewind a, NautilusTrader b)``; also risk
    rejections and NautilusTrader's denied orders, which must both be none."""
    out: list[str] = []
    for k in keys:
        a, b = Decimal(str(tradewind[k])), Decimal(str(nautilus[k]))
        tolerance = quantity if k == "filled_qty" else 1
        if abs(a - b) > tolerance:
            out.append(f"{k} (Tradewind {a}, NautilusTrader {b})")
    if tradewind.get("rejected", 0):
        out.append(f"Tradewind risk rejected {tradewind['rejected']} {tradewind['rejections']}")
    if nautilus.get("denied", 0):
        out.append(f"NautilusTrader denied {nautilus['denied']}")
    for name, side in (("Tradewind", tradewind), ("NautilusTrader", nautilus)):
        asked = side["orders"] * quantity
        if Decimal(str(side["filled_qty"])) != asked:
            out.append(f"{name} filled {side['filled_qty']} of {asked} ordered")
    return out


def verdict(
    name: str,
    tradewind: Mapping[str, Any],
    nautilus: Mapping[str, Any],
    keys: Sequence[str],
    quantity: Decimal,
) -> tuple[float | None, list[str]]:
    """The lines to print and the ratio Tradewind / NautilusTrader in inputs per
    second, None when the engines did different work."""
    lines = [f"{'':<16}{'Tradewind':>16}{'NautilusTrader':>16}"]
    for k in dict.fromkeys(("inputs", *keys, "fill_events")):
        lines.append(f"{k:<16}{tradewind[k]!s:>16}{nautilus[k]!s:>16}")
    diff = differing(tradewind, nautilus, keys, quantity)
    if diff:
        lines.append(f"REFUSED ({name}): not equal work, no ratio; differs: " + "; ".join(diff))
        return None, lines
    t = tradewind["inputs"] / tradewind["seconds"]
    n = nautilus["inputs"] / nautilus["seconds"]
    ratio = t / n
    lines.append(f"Tradewind: {t:,.0f} inputs/s; NautilusTrader: {n:,.0f} inputs/s")
    lines.append(
        f"ratio Tradewind/NautilusTrader ({name}): {ratio:.2f}  (target >= {TARGETS[name]:.1f})"
    )
    if "load_seconds" in nautilus:
        whole = nautilus["seconds"] + nautilus["load_seconds"]
        lines.append(
            f"  with NautilusTrader's data loading timed too (file to objects, as Tradewind's "
            f"time includes its parsing): {t / (nautilus['inputs'] / whole):.2f}"
        )
    parse = tradewind.get("parse_seconds")
    if parse is not None and parse < tradewind["seconds"]:
        bare = tradewind["inputs"] / (tradewind["seconds"] - parse)
        lines.append(
            f"  with Tradewind's loading left out too (reading and parsing the file, {parse:.3f} s "
            f"of its {tradewind['seconds']:.3f} s, as NautilusTrader's run() excludes its "
            f"own): {bare / n:.2f}"
        )
    return ratio, lines


# --- data ------------------------------------------------------------------------------


def write_depth_tape(path: Path, updates: int, source: Path = DEPTH_FILE) -> int:
    """The recording's depth diffs with its REST snapshot after the first diff,
    repeated until at least ``updates`` level updates; copy k shifts update ids
    by k spans and times by k spans plus 100 ms. Returns the copies written."""
    lines = [json.loads(raw) for raw in source.read_bytes().splitlines() if raw.strip()]
    depth = [d["data"] for d in lines if str(d.get("stream", "")).endswith("@depth@100ms")]
    snap = next(d for d in lines if "lastUpdateId" in d)
    if not depth:
        raise ValueError(f"{source}: no depth diffs")
    per_copy = sum(len(d["b"]) + len(d["a"]) for d in depth)
    copies = max(1, math.ceil(updates / per_copy))
    id_step = depth[-1]["u"] - depth[0]["U"] + 1
    ms_step = depth[-1]["E"] - depth[0]["E"] + 100
    stream = "btcusdt@depth@100ms"
    with path.open("w") as fh:
        for k in range(copies):
            for i, d in enumerate(depth):
                if i == 1:
                    s = {**snap, "lastUpdateId": snap["lastUpdateId"] + k * id_step}
                    fh.write(json.dumps(s) + "\n")
                x = {**d, "U": d["U"] + k * id_step, "u": d["u"] + k * id_step}
                x["E"] = d["E"] + k * ms_step
                fh.write(json.dumps({"stream": stream, "data": x}) + "\n")
    return copies


def applied_book_events(tape: Path, out: Path) -> tuple[int, int]:
    """Tradewind's book events from ``tape`` that change a book (the same rule
    as the paper venue and the strategy), one JSON line each for the other
    engine. Returns (events, level updates)."""

    async def collect() -> list[BookDelta]:
        kept: list[BookDelta] = []
        synced, book_id = False, 0
        async for batch in ReplaySource([tape], fmt="binance").batches(4096):
            for e in batch:
                if not isinstance(e, BookDelta):
                    continue
                if e.snapshot or (synced and e.last_update_id > book_id):
                    synced, book_id = True, e.last_update_id
                    kept.append(e)
        return kept

    kept = asyncio.run(collect())
    with out.open("w") as fh:
        for e in kept:
            fh.write(json.dumps([e.ts_event, e.snapshot, e.bids, e.asks]) + "\n")
    return len(kept), sum(len(e.bids) + len(e.asks) for e in kept)


# --- engines ---------------------------------------------------------------------------


def tradewind_counts(spec: BacktestSpec) -> dict[str, Any]:
    res = run_backtest(spec)
    s = res.summary
    return {
        "seconds": res.wall_s,
        "events": s.events_in,
        "bars": s.bars,
        "signals": s.signals,
        "rejected": s.rejected,
        "rejections": dict(res.rejections),
        "orders": s.orders,
        "orders_filled": res.curve.orders_filled,
        "fill_events": s.fills,
        "filled_qty": str(res.curve.filled_qty),
    }


def parse_seconds(tape: Path, fmt: str | None = None, rounds: int = 3) -> float:
    """Wall seconds to read ``tape`` and parse it into events with the parser a
    backtest uses, by chunks of the bus batch as the replay reads: Tradewind's
    counterpart of NautilusTrader's untimed loading. Best of ``rounds``."""
    factory = PARSERS[fmt or detect_format(tape)]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        run = batched(tape.read_bytes().splitlines(), factory)
        assert run is not None, "a backtest's trade and depth formats parse by chunks"
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def tradewind_trades(tape: Path, quantity: Decimal) -> dict[str, Any]:
    c = tradewind_counts(
        BacktestSpec(
            data=(tape,),
            strategy="ema_cross",
            params={"fast": 4, "slow": 12, "quantity": str(quantity), "bar_interval_s": 1},
            settings={"risk": OPEN_RISK, "paper": EXACT_PAPER},
        )
    )
    c["inputs"] = c["events"]
    c["parse_seconds"] = parse_seconds(tape)
    return c


def tradewind_book(
    tape: Path, quantity: Decimal, threshold: float, hold_s: float, books: int, levels: int
) -> dict[str, Any]:
    c = tradewind_counts(
        BacktestSpec(
            data=(tape,),
            fmt="binance",
            strategy=BOOK_STRATEGY,
            params={"quantity": str(quantity), "threshold": threshold, "hold_s": hold_s},
            settings={"risk": OPEN_RISK, "paper": EXACT_PAPER},
        )
    )
    # The strategy decides on every book event that changes the book (the
    # rule ``applied_book_events`` shares with it and the paper venue).
    c["books"], c["inputs"] = books, levels
    c["parse_seconds"] = parse_seconds(tape, "binance")
    return c


def venv_python(path: Path) -> Path:
    return path / "bin" / "python"


def install(path: Path) -> None:
    if not venv_python(path).exists():
        print(f"creating {path}")
        venv.EnvBuilder(with_pip=True).create(path)
    subprocess.run(
        [str(venv_python(path)), "-m", "pip", "install", "-q", "nautilus_trader"], check=True
    )


def nautilus_version(path: Path) -> str | None:
    py = venv_python(path)
    if not py.exists():
        return None
    res = subprocess.run(
        [str(py), "-c", "import nautilus_trader; print(nautilus_trader.__version__)"],
        capture_output=True,
        text=True,
    )
    return res.stdout.strip() if res.returncode == 0 else None


def nautilus_run(path: Path, job: Mapping[str, Any]) -> dict[str, Any]:
    res = subprocess.run(
        [str(venv_python(path)), str(NAUTILUS_SIDE), json.dumps(job)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"NautilusTrader run failed: {res.stderr.strip()[-2000:]}")
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# --- main ------------------------------------------------------------------------------


def compare_trades(
    venv_path: Path, d: Path, ticks: int, quantity: Decimal
) -> tuple[float | None, list[str]]:
    tape = d / "trades.jsonl"
    write_tape(tape, tape_events(ticks))
    naut = nautilus_run(
        venv_path,
        {
            "kind": "trades",
            "path": str(tape),
            "bar_s": 1,
            "fast": 4,
            "slow": 12,
            "quantity": str(quantity),
        },
    )
    tw = tradewind_trades(tape, quantity)
    return verdict("trades", tw, naut, TRADE_KEYS, quantity)


def compare_book(
    venv_path: Path, d: Path, updates: int, quantity: Decimal, threshold: float, hold_s: float
) -> tuple[float | None, list[str]]:
    tape = d / "depth.jsonl"
    copies = write_depth_tape(tape, updates)
    events = d / "book_events.jsonl"
    books, levels = applied_book_events(tape, events)
    naut = nautilus_run(
        venv_path,
        {
            "kind": "book",
            "path": str(events),
            "quantity": str(quantity),
            "threshold": threshold,
            "hold_s": hold_s,
        },
    )
    tw = tradewind_book(tape, quantity, threshold, hold_s, books, levels)
    ratio, lines = verdict("book", tw, naut, BOOK_KEYS, quantity)
    head = f"book: {copies} copies of the recorded depth stream, {books:,} book events"
    return ratio, [head, *lines]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--install", action="store_true", help="create the venv and pip install")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--only", choices=("trades", "book"), default=None)
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--quantity", type=Decimal, default=Decimal("0.0001"))
    ap.add_argument("--updates", type=int, default=200_000, help="L2 level updates, at least")
    ap.add_argument("--book-quantity", type=Decimal, default=Decimal("0.001"))
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--hold-s", type=float, default=1.0)
    args = ap.parse_args()
    print(f"machine: {machine()}, load {os.getloadavg()[0]:.1f}")
    if args.install:
        install(args.venv)
    version = nautilus_version(args.venv)
    if version is None:
        print(
            f"SKIPPED: no NautilusTrader in {args.venv}; run with --install to create it "
            "(pip install nautilus_trader into that venv)"
        )
        return 0
    print(f"NautilusTrader {version}")
    try:
        return compare(args)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"tradewind: bench_nautilus failed: {e}", file=sys.stderr)
        return 1


def compare(args: argparse.Namespace) -> int:
    refused = False
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.only in (None, "trades"):
            print(f"trades: {args.ticks:,} recorded BTCUSDT trades, {args.quantity} BTC an order")
            ratio, lines = compare_trades(args.venv, d, args.ticks, args.quantity)
            print("\n".join(lines))
            refused |= ratio is None
        if args.only in (None, "book"):
            ratio, lines = compare_book(
                args.venv, d, args.updates, args.book_quantity, args.threshold, args.hold_s
            )
            print("\n".join(lines))
            refused |= ratio is None
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 1 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
