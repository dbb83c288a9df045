"""A tiny run of ``bench/soak.py`` against the real Redis and PostgreSQL: the
five service processes come up, are sampled and stopped, and the growth
figures and the picture come out. Nothing about the figures' values is
asserted (they are timings); only that every measure is there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_tiny_soak_samples_every_process_and_draws_them(
    redis_server: str, postgres_server: str, tmp_path: Path
) -> None:
    png = tmp_path / "soak.png"
    res = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--minutes",
            "0.2",
            "--rate",
            "100",
            "--sample-s",
            "1",
            "--warmup-min",
            "0.03",
            "--timeout",
            "60",
            "--png",
            str(png),
            "--redis",
            redis_server,
            "--postgres",
            postgres_server,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    for service in ("db_writer", "execution", "risk", "signal", "ws"):
        assert f"rss {service} MiB" in out
    assert "redis used MiB" in out
    assert "rows/s persisted" in out
    assert "largest RSS growth after warm-up" in out
    assert png.stat().st_size > 10_000


def test_soak_refuses_a_non_positive_length(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(SOAK), "--minutes", "0", "--png", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "tradewind: --minutes, --rate and --sample-s must be positive"
    ]
    assert not (tmp_path / "x.png").exists()
