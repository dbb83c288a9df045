"""The benchmarks' own logic, in tiny runs: the NautilusTrader comparison
refuses a ratio unless both engines did the same work, Tradewind's side of it
rejects nothing and fills every order whole, and the soak's growth figures
are ratios to the start of the same run. No timing is asserted."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_nautilus as bn  # noqa: E402
import soak  # noqa: E402

Q = Decimal("0.0001")


def counts(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "inputs": 1000,
        "seconds": 1.0,
        "bars": 100,
        "books": 50,
        "signals": 10,
        "orders": 10,
        "orders_filled": 10,
        "fill_events": 10,
        "filled_qty": "0.0010",
        "rejected": 0,
        "rejections": {},
        "denied": 0,
    }
    return {**base, **over}


def test_equal_counts_give_a_ratio() -> None:
    ratio, lines = bn.verdict("trades", counts(seconds=0.5), counts(), bn.TRADE_KEYS, Q)
    assert ratio == pytest.approx(2.0)
    assert not any("REFUSED" in line for line in lines)


def test_counts_apart_by_one_still_compare() -> None:
    tw = counts(bars=101, signals=11, orders=11, orders_filled=11, filled_qty="0.0011")
    ratio, _ = bn.verdict("trades", tw, counts(), bn.TRADE_KEYS, Q)
    assert ratio is not None


@pytest.mark.parametrize(
    ("key", "value"),
    [("bars", 102), ("signals", 8), ("orders", 12), ("orders_filled", 12), ("books", 52)],
)
def test_counts_apart_by_more_than_one_refuse_and_say_which(key: str, value: int) -> None:
    keys = bn.BOOK_KEYS if key == "books" else bn.TRADE_KEYS
    ratio, lines = bn.verdict("book", counts(**{key: value}), counts(), keys, Q)
    assert ratio is None
    refusal = lines[-1]
    assert refusal.startswith("REFUSED (book)")
    assert f"{key} (Tradewind {value}, NautilusTrader " in refusal


def test_a_partial_fill_refuses_even_with_equal_counts() -> None:
    naut = counts(filled_qty="0.00095")
    ratio, lines = bn.verdict("trades", counts(), naut, bn.TRADE_KEYS, Q)
    assert ratio is None
    assert "NautilusTrader filled 0.00095 of 0.0010 ordered" in lines[-1]


def test_rejections_and_denials_refuse() -> None:
    tw = counts(rejected=3, rejections={"below_min_notional": 3})
    ratio, lines = bn.verdict("trades", tw, counts(denied=2), bn.TRADE_KEYS, Q)
    assert ratio is None
    assert "Tradewind risk rejected 3 {'below_min_notional': 3}" in lines[-1]
    assert "NautilusTrader denied 2" in lines[-1]


def test_fill_events_are_compared_on_the_book_only() -> None:
    naut = counts(fill_events=14)
    assert bn.verdict("trades", counts(), naut, bn.TRADE_KEYS, Q)[0] is not None
    assert bn.verdict("book", counts(), naut, bn.BOOK_KEYS, Q)[0] is None


def test_tradewind_trades_side_rejects_nothing_and_fills_whole(tmp_path: Path) -> None:
    tape = tmp_path / "trades.jsonl"
    bn.write_tape(tape, bn.tape_events(3000))
    c = bn.tradewind_trades(tape, Q)
    assert c["inputs"] == 3000
    assert c["bars"] > c["signals"] > 0
    assert c["rejected"] == 0, c["rejections"]
    assert c["orders"] == c["orders_filled"] == c["signals"]
    assert Decimal(c["filled_qty"]) == c["orders"] * Q


def test_tradewind_book_side_decides_on_every_applied_book_event(tmp_path: Path) -> None:
    tape = tmp_path / "depth.jsonl"
    copies = bn.write_depth_tape(tape, 20_000)
    assert copies == 2
    events = tmp_path / "events.jsonl"
    books, levels = bn.applied_book_events(tape, events)
    # 525 diffs and a snapshot a copy; a diff the book already holds (before
    # the first snapshot, or not newer than the snapshot) changes nothing:
    # the first copy's first two diffs, the second copy's second
    assert books == 2 * 526 - 3
    assert levels >= 20_000
    assert len(events.read_text().splitlines()) == books
    q = Decimal("0.001")
    c = bn.tradewind_book(tape, q, 0.6, 1.0, books, levels)
    assert c["rejected"] == 0, c["rejections"]
    assert c["orders"] == c["orders_filled"] == c["signals"] > 0
    assert Decimal(c["filled_qty"]) == c["orders"] * q


def test_soak_growth_is_the_end_over_the_start_after_warm_up() -> None:
    s = soak.Samples(rss={"ws": [], "risk": []})
    for i in range(20):
        s.t.append(float(i))
        s.rss["ws"].append(100.0 if i < 10 else 110.0)
        s.rss["risk"].append(50.0)
        s.redis_mib.append(10.0 + i)
        s.streams.append(i)
        s.rows.append(100 * i if i < 15 else 100 * 15)
    g = soak.growth(s, warmup_s=0.0, end_s=14.0)
    assert g["rss ws MiB"][2] == pytest.approx(1.1)
    assert g["rss risk MiB"][2] == pytest.approx(1.0)
    # the tape ended at 14 s: the rate after it is left out
    assert g["rows/s persisted"][2] == pytest.approx(1.0)
    lines = soak.report(s, 0.0, 14.0)
    assert "largest RSS growth after warm-up: +10.0%" in lines[-1]


def test_soak_refuses_too_few_samples_after_warm_up() -> None:
    s = soak.Samples(rss={"ws": [1.0, 1.0, 1.0]}, t=[0.0, 1.0, 2.0], redis_mib=[1.0] * 3)
    s.rows = [0, 1, 2]
    with pytest.raises(ValueError, match="samples after the warm-up"):
        soak.growth(s, warmup_s=1.5)
