"""``tradewind migrate`` against a database that is down or refuses us: one
line on stderr naming the reason, exit 1, no traceback, no URL."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import free_port
from tests.e2e.cluster import TRADEWIND, clean_env


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2-secret@127.0.0.1:{port}/test",
        "sqlite:////nonexistent-dir/hunter2-secret/x.db",
    ],
)
def test_migrate_against_a_dead_database_fails_in_one_line(url: str) -> None:
    out = subprocess.run(
        [*TRADEWIND, "migrate"],
        env={**clean_env(), "TRADEWIND_STORE__URL": url.format(port=free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradewind: cannot migrate"), out.stderr
    assert "hunter2" not in out.stderr
