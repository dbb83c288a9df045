"""The same EMA-crossover backtest in Tradewind and in NautilusTrader, on the
same recorded trades, and the throughput ratio Tradewind / NautilusTrader.

NautilusTrader lives in its own virtual environment (``--venv``, default
``/tmp/tw-nautilus-venv``) so that it never touches Tradewind's; ``--install``
creates it and installs ``nautilus_trader`` with pip. Without the venv the
benchmark says so and exits 0.

Equivalence: both build 1-second bars from the trades (Nautilus:
``…-1-SECOND-LAST-INTERNAL`` bars), EMA periods fast 4 / slow 12, long only,
0.01 BTC per trade (Nautilus runs its shipped ``EMACrossLongOnly`` example
strategy). Tradewind's time is the whole ``tradewind backtest`` run: reading
and parsing the JSONL, all five services, the report data. Nautilus's time is
``BacktestEngine.run()`` only: its TradeTick objects are built from the same
file beforehand, untimed, which favours Nautilus.

    python bench/bench_nautilus.py [--install] [--ticks 200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import machine
from bench_redis_pipeline import tape_events, write_tape
from tradewind.backtest import BacktestSpec, run_backtest

DEFAULT_VENV = Path("/tmp/tw-nautilus-venv")
TARGET_RATIO = 1.0

NAUTILUS_RUN = textwrap.dedent(
    """
    import json, sys, time
    from decimal import Decimal

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.examples.strategies.ema_cross_long_only import (
        EMACrossLongOnly, EMACrossLongOnlyConfig,
    )
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import BarType, TradeTick
    from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType
    from nautilus_trader.model.identifiers import TradeId, Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    path = sys.argv[1]
    inst = TestInstrumentProvider.btcusdt_binance()
    ticks = []
    with open(path, "rb") as fh:
        for line in fh:
            d = json.loads(line)["data"]
            ts = d["T"] * 1_000_000
            ticks.append(TradeTick(
                inst.id, inst.make_price(float(d["p"])), inst.make_qty(float(d["q"])),
                AggressorSide.SELLER if d["m"] else AggressorSide.BUYER,
                TradeId(str(d["t"])), ts, ts,
            ))
    engine = BacktestEngine(config=BacktestEngineConfig(
        trader_id="BENCH-001", logging=LoggingConfig(log_level="ERROR"),
    ))
    engine.add_venue(
        venue=Venue("BINANCE"), oms_type=OmsType.NETTING, account_type=AccountType.CASH,
        base_currency=None, starting_balances=[Money(1_000_000, USDT), Money(10, BTC)],
    )
    engine.add_instrument(inst)
    engine.add_data(ticks)
    engine.add_strategy(EMACrossLongOnly(EMACrossLongOnlyConfig(
        instrument_id=inst.id,
        bar_type=BarType.from_str(f"{inst.id}-1-SECOND-LAST-INTERNAL"),
        trade_size=Decimal("0.01"), fast_ema_period=4, slow_ema_period=12,
        request_historical_bars=False,
    )))
    t0 = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - t0
    orders = len(engine.trader.generate_order_fills_report())
    print(json.dumps({"ticks": len(ticks), "seconds": elapsed, "fills": orders}))
    engine.dispose()
    """
)


def venv_python(path: Path) -> Path:
    return path / "bin" / "python"


def install(path: Path) -> None:
    if not venv_python(path).exists():
        print(f"creating {path}")
        venv.EnvBuilder(with_pip=True).create(path)
    subprocess.run(
        [str(venv_python(path)), "-m", "pip", "install", "-q", "nautilus_trader"],
        check=True,
    )


def nautilus_available(path: Path) -> str | None:
    py = venv_python(path)
    if not py.exists():
        return None
    res = subprocess.run(
        [str(py), "-c", "import nautilus_trader; print(nautilus_trader.__version__)"],
        capture_output=True,
        text=True,
    )
    return res.stdout.strip() if res.returncode == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--install", action="store_true", help="create the venv and pip install")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--ticks", type=int, default=200_000)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    if args.install:
        install(args.venv)
    version = nautilus_available(args.venv)
    if version is None:
        print(
            f"SKIPPED: no NautilusTrader in {args.venv}; run with --install to create it "
            "(pip install nautilus_trader into that venv)"
        )
        return 0
    with tempfile.TemporaryDirectory() as d:
        tape = Path(d) / "trades.jsonl"
        write_tape(tape, tape_events(args.ticks))
        script = Path(d) / "run_nautilus.py"
        script.write_text(NAUTILUS_RUN)
        res = subprocess.run(
            [str(venv_python(args.venv)), str(script), str(tape)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            print(f"NautilusTrader run failed:\n{res.stderr[-3000:]}")
            return 1
        naut = json.loads(res.stdout.strip().splitlines()[-1])
        tw = run_backtest(
            BacktestSpec(
                data=(tape,),
                strategy="ema_cross",
                params={"fast": 4, "slow": 12, "quantity": "0.01", "bar_interval_s": 1},
            )
        )
    n_tps = naut["ticks"] / naut["seconds"]
    t_tps = tw.market_events / tw.wall_s
    print(f"ticks: {args.ticks:,} recorded BTCUSDT trades (shifted copies)")
    print(f"NautilusTrader {version}: {n_tps:,.0f} ticks/s ({naut['fills']} fills)")
    print(f"Tradewind backtest: {t_tps:,.0f} ticks/s ({tw.metrics['fills']} fills)")
    ratio = t_tps / n_tps
    print(f"ratio Tradewind/NautilusTrader: {ratio:.2f}  (target >= {TARGET_RATIO:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
