"""Parse throughput per recorded exchange format, in messages per second.

Also the cost of Tradewind's normalization: Binance trade frames parsed into
``Trade`` events versus a bare msgspec typed decode of the same frames into a
struct (the floor any parser pays). The ratio (bare time / ours) should stay
at or above 0.5.

    /work/.venv/bin/python bench/bench_parse.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from tradewind.exchanges.replay import PARSERS, detect_format

DATA = Path(
    os.environ.get(
        "TRADEWIND_MARKET_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "market"
    )
)


def _lines(path: Path) -> list[bytes]:
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Messages per second: best of repeated runs, for at least ``seconds``."""
    best = float("inf")
    n = 0
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
        if runs >= 200:
            break
    return n / best


class _Trade(msgspec.Struct):
    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _Frame(msgspec.Struct):
    stream: str
    data: _Trade


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    print(f"{'file':50} {'format':13} {'msgs':>6} {'msgs/s':>12}")
    for path in sorted(DATA.glob("*.jsonl")):
        fmt = detect_format(path)
        lines = _lines(path)
        factory = PARSERS[fmt]

        def run(lines: list[bytes] = lines, factory: Callable[[], object] = factory) -> int:
            parser = factory()
            parse = parser.parse  # type: ignore[attr-defined]
            for line in lines:
                with contextlib.suppress(ValueError):
                    parse(line, 0)
            return len(lines)

        print(f"{path.name:50} {fmt:13} {len(lines):6} {_rate(run, args.seconds):12,.0f}")

    trades = _lines(DATA / "binance_spot_btcusdt_trades_20240808.jsonl")
    decoder = msgspec.json.Decoder(_Frame)

    def bare() -> int:
        decode = decoder.decode
        for line in trades:
            decode(line)
        return len(trades)

    def ours() -> int:
        parse = PARSERS["binance"]().parse  # type: ignore[attr-defined]
        for line in trades:
            parse(line, 0)
        return len(trades)

    bare_rate = _rate(bare, args.seconds)
    our_rate = _rate(ours, args.seconds)
    print()
    print(f"binance trade, bare msgspec typed decode: {bare_rate:12,.0f} msgs/s")
    print(f"binance trade, parse + normalize (Trade): {our_rate:12,.0f} msgs/s")
    print(f"ratio (target >= 0.5): {our_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
