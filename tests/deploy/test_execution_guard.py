"""The execution venue guard: real keys on paper, or a live venue without keys,
refuse to start with one line and exit 2; the venue is logged at start."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import structlog

from tests.conftest import free_port, service_context
from tests.e2e.cluster import ORDER_KEY, TRADEWIND, clean_env
from tradewind.config import load_settings
from tradewind.execution.guard import venue_problem
from tradewind.services.execution import ExecutionService


def _execution(**kw: object) -> object:
    return load_settings(execution=kw).execution


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({}, False),
        ({"api_key": "paper-no-key", "api_secret": "paper-no-key"}, False),
        ({"api_key": "PAPER-NO-KEY\n", "api_secret": ""}, False),
        ({"api_key": "paper", "api_secret": "paper"}, False),
        ({"api_key": "realkey", "api_secret": "realsecret"}, True),
        ({"api_key": "realkey", "api_secret": "paper-no-key"}, True),
        (
            {"api_key": "realkey", "api_secret": "realsecret", "allow_paper_with_keys": True},
            False,
        ),
        ({"venue": "binance"}, True),
        ({"venue": "binance", "api_key": "paper-no-key", "api_secret": "paper-no-key"}, True),
        ({"venue": "ccxt", "api_key": "realkey", "api_secret": "paper-no-key"}, True),
        (
            {"venue": "binance", "api_key": "k", "api_secret": "s", "allow_paper_with_keys": True},
            False,
        ),
        ({"venue": "binance", "api_key": "realkey", "api_secret": "realsecret"}, False),
        (
            {
                "venue": "ccxt",
                "api_key": "realkey",
                "api_secret": "realsecret",
                "allow_paper_with_keys": True,
            },
            False,
        ),
    ],
)
def test_venue_problem(settings: dict[str, object], refused: bool) -> None:
    problem = venue_problem(_execution(**settings))  # type: ignore[arg-type]
    assert (problem is not None) == refused, problem
    if problem is not None:
        assert "\n" not in problem
        assert "realkey" not in problem and "realsecret" not in problem


def test_the_venue_is_logged_at_start(make_settings) -> None:  # type: ignore[no-untyped-def]
    with structlog.testing.capture_logs() as logs:
        ExecutionService(service_context(make_settings()))
    venue = [e for e in logs if e["event"] == "execution venue"]
    assert venue == [
        {
            "event": "execution venue",
            "log_level": "info",
            "venue": "paper",
            "testnet": False,
            "keys": "absent",
            "allow_paper_with_keys": False,
        }
    ]


def _key_files(tmp_path: Path, key: str, secret: str) -> dict[str, str]:
    (tmp_path / "k").write_text(key + "\n")
    (tmp_path / "s").write_text(secret + "\n")
    return {
        "TRADEWIND_EXECUTION__API_KEY_FILE": str(tmp_path / "k"),
        "TRADEWIND_EXECUTION__API_SECRET_FILE": str(tmp_path / "s"),
        "TRADEWIND_SECRETS_DIR": str(tmp_path / "none"),
        "TRADEWIND_BUS__KIND": "redis",
        # Nothing listens here: a process that got past the guard fails with 1.
        "TRADEWIND_BUS__REDIS_URL": "redis://127.0.0.1:1/0",
        "TRADEWIND_HTTP__PORT": "0",
    }


@pytest.mark.parametrize(
    ("venue", "key", "why"),
    [
        ("paper", "realkey", "mounted but TRADEWIND_EXECUTION__VENUE is 'paper'"),
        ("binance", "paper-no-key", "no exchange API key and secret are mounted"),
    ],
)
def test_the_process_refuses_with_one_line(tmp_path: Path, venue: str, key: str, why: str) -> None:
    env = {
        **clean_env(),
        **_key_files(tmp_path, key, key),
        "TRADEWIND_EXECUTION__VENUE": venue,
        "TRADEWIND_CONTROL__ORDER_KEY": ORDER_KEY,
    }
    proc = subprocess.run(
        [*TRADEWIND, "service", "execution"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradewind: "), proc.stderr
    assert why in lines[0]
    assert key not in lines[0].replace("paper-no-key", "")


def test_compose_placeholders_start_on_paper_and_log_the_venue(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {
        **clean_env(),
        **_key_files(tmp_path, "paper-no-key", "paper-no-key"),
        "TRADEWIND_EXECUTION__VENUE": "paper",
        "TRADEWIND_CONTROL__ORDER_KEY": ORDER_KEY,
        "TRADEWIND_BUS__REDIS_URL": redis_url,
        "TRADEWIND_BUS__PREFIX": redis_prefix,
        "TRADEWIND_HTTP__PORT": str(free_port()),
    }
    log = tmp_path / "execution.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*TRADEWIND, "service", "execution", "--consumer", "guard"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "execution venue" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    venue = [e for e in events if e.get("event") == "execution venue"]
    assert len(venue) == 1, log.read_text()
    assert venue[0]["venue"] == "paper" and venue[0]["keys"] == "absent"
