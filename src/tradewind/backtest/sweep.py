"""Parameter sweeps: one backtest per grid point, in parallel processes.

Each point is a whole, independent run (its own bus, services and clock) in a
worker process, so points cannot influence each other and a sweep point gives
exactly the result of the same single run. Workers are bounded by the CPU
count: the runs are CPU-bound, more processes than cores only add switching.
Workers start with ``spawn`` so that they inherit no event loop, thread or
lock from the parent.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradewind.backtest.runner import BacktestSpec, check_data, run_backtest

Grid = dict[str, list[str]]


def parse_grid(items: Sequence[str]) -> Grid:
    """``["fast=3,4,5", "slow=10,12"]`` → ``{"fast": ["3","4","5"], "slow": ["10","12"]}``."""
    grid: Grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not vals:
            raise ValueError(f"expected KEY=V1,V2,... in --grid, got {item!r}")
        if key in grid:
            raise ValueError(f"grid parameter {key!r} given twice")
        grid[key] = vals
    return grid


def grid_points(grid: Grid) -> list[dict[str, str]]:
    """The cartesian product, the last parameter varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


@dataclass
class SweepPoint:
    index: int
    grid: dict[str, str]
    result: dict[str, Any] | None
    """The point's ``BacktestResult.to_json()``; None when the point failed."""
    error: str | None = None
    wall_s: float = 0.0


def run_point(spec: BacktestSpec, out_dir: Path | None = None) -> tuple[dict[str, Any], float]:
    """One grid point in a worker: the result JSON (and report files if asked)."""
    result = run_backtest(spec)
    if out_dir is not None:
        from tradewind.backtest.report import write_report

        write_report(result, out_dir, plot=False)
    return result.to_json(), result.wall_s


def _worker(
    index: int, spec: BacktestSpec, out_dir: Path | None
) -> tuple[int, dict[str, Any] | None, str | None, float]:
    try:
        data, wall = run_point(spec, out_dir)
        return index, data, None, wall
    except ValueError as exc:
        return index, None, str(exc), 0.0


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def run_sweep(
    base: BacktestSpec,
    grid: Grid,
    workers: int | None = None,
    out_dir: Path | None = None,
    on_done: Callable[[SweepPoint], None] | None = None,
) -> list[SweepPoint]:
    """Every grid point of ``grid`` over ``base``; results in grid order.

    A point whose parameters are invalid (for example fast >= slow) is
    reported with its error; the others still run.
    """
    check_data(base)
    points = grid_points(grid)
    n = min(workers or default_workers(), len(points))
    out: list[SweepPoint | None] = [None] * len(points)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        futures = [
            pool.submit(
                _worker,
                i,
                base.with_params(p),
                None if out_dir is None else out_dir / f"point-{i:03d}",
            )
            for i, p in enumerate(points)
        ]
        for fut in futures:
            i, data, err, wall = fut.result()
            sp = SweepPoint(i, points[i], data, err, wall)
            out[i] = sp
            if on_done is not None:
                on_done(sp)
    return [p for p in out if p is not None]


def sweep_json(base: BacktestSpec, grid: Grid, points: Sequence[SweepPoint]) -> dict[str, Any]:
    """The sweep's record: the grid and, per point, its parameters and metrics."""
    return {
        "strategy": base.strategy,
        "base_params": dict(base.params),
        "grid": grid,
        "data": [str(p) for p in base.data],
        "points": [
            {
                "index": p.index,
                "grid": p.grid,
                "params": None if p.result is None else p.result["params"],
                "metrics": None if p.result is None else p.result["metrics"],
                "error": p.error,
            }
            for p in points
        ],
    }
