"""A bounded soak of the five ``tradewind service`` processes over Redis: a
paced replay (``--rate`` ticks/s of the recorded Binance trades, shifted
copies) for ``--minutes``, sampling every ``--sample-s`` the RSS of every
service process, Redis's used memory, the length of every stream of the run
and the rows db_writer has persisted.

Growth is reported as ratios to a baseline in the same run: after the
warm-up (``--warmup-min``), the mean of the first tenth of the samples is the
baseline and the mean of the last tenth the end, for each process's RSS, for
Redis memory and for the persisted rows per second (throughput drift). The
samples are drawn over time into a PNG (``--png``, default ``bench/soak.png``)
and kept beside it as JSON. The default warm-up lasts until execution's paper
market history is full (``paper.history_max_events`` events at the rate):
until then its RSS grows by design.
Bounded in count (the tape holds ``rate * minutes * 60`` ticks) and in time
(the run stops ``--timeout`` seconds after the tape should have ended).
Needs Redis, PostgreSQL and ``tradewind service`` (as ``bench_redis_pipeline.py``).

    python bench/soak.py --minutes 30 [--rate 1000] [--sample-s 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
import redis

from _ticks import TickTape, recorded_trades
from bench_pipeline import machine
from bench_redis_pipeline import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    SERVICES,
    Services,
    _pg_admin,
    _pg_count,
    latency_env,
    trade_frame,
)
from tradewind.config import load_settings

HERE = Path(__file__).resolve().parent
TARGET_GROWTH = 0.02


@dataclass
class Samples:
    t: list[float] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)
    """MiB per service."""
    redis_mib: list[float] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)
    """Entries in all the run's streams."""
    rows: list[int] = field(default_factory=list)


def rss_mib(pid: int) -> float:
    """Resident set size from /proc (Linux), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def window_means(values: Sequence[float], fraction: float = 0.1) -> tuple[float, float]:
    """Means of the first and the last ``fraction`` of ``values`` (at least one each)."""
    if not values:
        raise ValueError("no samples")
    k = max(1, int(len(values) * fraction))
    return sum(values[:k]) / k, sum(values[-k:]) / k


def rates(t: Sequence[float], counts: Sequence[int]) -> list[float]:
    """Per-interval rates of a cumulative count."""
    return [(counts[i] - counts[i - 1]) / max(t[i] - t[i - 1], 1e-9) for i in range(1, len(counts))]


def growth(
    s: Samples, warmup_s: float, end_s: float = float("inf")
) -> dict[str, tuple[float, float, float]]:
    """(baseline, end, end / baseline) per measure, over the samples after
    warm-up and before ``end_s`` (the tape's end: past it the rate falls to 0)."""
    keep = [i for i, t in enumerate(s.t) if warmup_s <= t <= end_s]
    if len(keep) < 3:
        raise ValueError(f"{len(keep)} samples after the warm-up: run longer or sample more often")
    out: dict[str, tuple[float, float, float]] = {}
    series: dict[str, list[float]] = {
        f"rss {n} MiB": [v[i] for i in keep] for n, v in s.rss.items()
    }
    series["redis used MiB"] = [s.redis_mib[i] for i in keep]
    series["rows/s persisted"] = rates([s.t[i] for i in keep], [s.rows[i] for i in keep])
    for name, values in series.items():
        base, end = window_means(values)
        out[name] = (base, end, end / base if base else float("nan"))
    return out


def write_paced_tape(path: Path, n: int, spacing_ns: int) -> None:
    """``n`` Binance trade frames ``spacing_ns`` apart, written as they are made,
    so a long soak's tape never sits in memory."""
    tape = TickTape(n, recorded_trades())
    enc = msgspec.json.Encoder()
    t0: int | None = None
    i = 0
    with path.open("wb") as fh:
        for batch in tape.template_batches(4096):
            for e in tape.stamp(batch):
                if t0 is None:
                    t0 = e.ts_event
                ts_ms = (t0 + i * spacing_ns) // 1_000_000
                i += 1
                fh.write(enc.encode(trade_frame(e, ts_ms)) + b"\n")


def stream_entries(r: redis.Redis, prefix: str) -> int:
    total = 0
    for key in r.scan_iter(f"{prefix}*", count=1000, _type="stream"):
        total += int(r.xlen(key))
    return total


def soak(args: argparse.Namespace, d: Path) -> Samples:
    seconds = args.minutes * 60
    n = max(1, int(args.rate * seconds))
    tape = d / "soak.jsonl"
    write_paced_tape(tape, n, int(1e9 / args.rate))
    name = f"twsoak_{uuid.uuid4().hex[:10]}"
    db = f"{args.postgres.rpartition('/')[0]}/{name}"
    _pg_admin(args.postgres, f'CREATE DATABASE "{name}"')
    from tradewind.storage import migrate

    migrate.upgrade(db)
    svc = Services(args.redis, db, tape, 1.0, latency_env(args.bar_s))
    r = redis.Redis.from_url(args.redis)
    s = Samples(rss={n: [] for n in SERVICES})
    try:
        svc.start()
        t0 = time.monotonic()
        deadline = t0 + seconds + args.timeout
        rows = 0
        while time.monotonic() < deadline and rows < n:
            now = time.monotonic() - t0
            rows = _pg_count(db)
            s.t.append(now)
            s.rows.append(rows)
            for proc, svc_name in zip(svc.procs, SERVICES, strict=True):
                s.rss[svc_name].append(rss_mib(proc.pid))
            s.redis_mib.append(int(r.info("memory")["used_memory"]) / 2**20)
            s.streams.append(stream_entries(r, svc.prefix))
            dead = [nm for p, nm in zip(svc.procs, SERVICES, strict=True) if p.poll() is not None]
            if dead:
                raise RuntimeError(f"service exited during the soak: {', '.join(dead)}")
            time.sleep(max(0.0, args.sample_s - (time.monotonic() - t0 - now)))
        if rows < n:
            print(f"note: {rows:,} of {n:,} ticks persisted by the time bound")
    finally:
        svc.stop()
        r.close()
        _pg_admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return s


def plot(s: Samples, warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [t / 60 for t in s.t]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    for svc_name, values in s.rss.items():
        axes[0].plot(minutes, values, label=svc_name)
    axes[0].set_ylabel("RSS MiB")
    axes[0].legend(loc="upper left", fontsize="small", ncol=5)
    axes[1].plot(minutes, s.redis_mib, color="tab:red")
    axes[1].set_ylabel("Redis used MiB")
    axes[2].plot(minutes, s.streams, color="tab:purple")
    axes[2].set_ylabel("stream entries")
    axes[3].plot(minutes[1:], rates(s.t, s.rows), color="tab:green")
    axes[3].set_ylabel("rows/s persisted")
    axes[3].set_xlabel("minutes")
    for ax in axes:
        ax.axvline(warmup_s / 60, color="grey", linestyle=":")
        ax.grid(alpha=0.3)
    fig.suptitle("Tradewind soak: five service processes over Redis (dotted: end of warm-up)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(s: Samples, warmup_s: float, end_s: float = float("inf")) -> list[str]:
    lines = [f"{'measure':<24}{'baseline':>12}{'end':>12}{'end/base':>10}"]
    worst = 0.0
    for name, (base, end, ratio) in growth(s, warmup_s, end_s).items():
        lines.append(f"{name:<24}{base:>12.1f}{end:>12.1f}{ratio:>10.3f}")
        if name.startswith("rss "):
            worst = max(worst, ratio - 1)
    lines.append(
        f"largest RSS growth after warm-up: {worst:+.1%} (target < {TARGET_GROWTH:.0%}); "
        f"stream entries at the end {s.streams[-1]:,} (peak {max(s.streams):,})"
    )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="ticks per second")
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument(
        "--warmup-min",
        type=float,
        default=None,
        help="default: a tenth of the run, or longer until execution's paper market "
        "history is full (paper.history_max_events at --rate, plus a fifth)",
    )
    ap.add_argument("--bar-s", type=float, default=0.02, help="bar interval of the EMA strategy")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds past the tape's end")
    ap.add_argument("--png", type=Path, default=HERE / "soak.png")
    ap.add_argument("--redis", default=DEFAULT_REDIS)
    ap.add_argument("--postgres", default=DEFAULT_PG)
    args = ap.parse_args()
    if args.minutes <= 0 or args.rate <= 0 or args.sample_s <= 0:
        print("tradewind: --minutes, --rate and --sample-s must be positive", file=sys.stderr)
        return 2
    if args.warmup_min is not None:
        warmup_s = 60 * args.warmup_min
    else:
        history_s = load_settings().paper.history_max_events / args.rate
        warmup_s = max(6 * args.minutes, 1.2 * history_s)
    print(f"machine: {machine()}, load {os.getloadavg()[0]:.1f}")
    print(f"soak: {args.minutes:g} min at {args.rate:,.0f} ticks/s, warm-up {warmup_s:.0f} s")
    try:
        with tempfile.TemporaryDirectory() as d:
            s = soak(args, Path(d))
        lines = report(s, warmup_s, args.minutes * 60)
    except (RuntimeError, ValueError, OSError, redis.RedisError) as e:
        print(f"tradewind: soak failed: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    plot(s, warmup_s, args.png)
    args.png.with_suffix(".json").write_bytes(msgspec.json.encode(s))
    print(f"picture: {args.png}; load after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
