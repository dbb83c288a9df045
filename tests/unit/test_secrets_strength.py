"""Shared secrets (control token, order key) are refused when empty, blank or
weak, at start, with one line and exit 2, by every command that loads settings."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tradewind.config import ConfigError, load_settings, secret_bits

TRADEWIND = [str(Path(sys.executable).with_name("tradewind"))]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "\t\n",
        "x",
        "short-token",
        secrets.token_hex(16),
        "a" * 200,
        "ab" * 100,
        secrets.token_hex(32) + " x",
        " " + secrets.token_hex(32),
    ],
)
@pytest.mark.parametrize("key", ["token", "order_key"])
def test_weak_secrets_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(control={key: value})
    assert err.value.key == f"TRADEWIND_CONTROL__{key.upper()}"
    assert len(value.strip()) < 8 or value.strip() not in str(err.value)


@pytest.mark.parametrize(
    "value",
    [secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)],
)
def test_32_random_bytes_in_common_encodings_pass(value: str) -> None:
    assert secret_bits(value) >= 256
    assert load_settings(control={"token": value}).control.token is not None


def test_generated_secrets_always_pass() -> None:
    """What ``make secrets`` and the docs create never trips the check."""
    for _ in range(2000):
        assert secret_bits(secrets.token_urlsafe(32)) >= 256
        assert secret_bits(secrets.token_hex(32)) >= 256


@pytest.mark.parametrize("content", ["", "  \n", "tiny\n"])
@pytest.mark.parametrize("command", [["status", "--timeout", "1"], ["service", "risk"]])
def test_cli_and_risk_refuse_a_weak_token_file(
    tmp_path: Path, content: str, command: list[str]
) -> None:
    token = tmp_path / "control_token"
    token.write_text(content)
    env = {
        "PATH": "/usr/bin:/bin",
        "TRADEWIND_CONTROL__TOKEN_FILE": str(token),
        "TRADEWIND_BUS__KIND": "redis",
        "TRADEWIND_BUS__REDIS_URL": "redis://127.0.0.1:1/0",
    }
    r = subprocess.run([*TRADEWIND, *command], env=env, capture_output=True, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("tradewind: invalid setting "), err
    assert "TRADEWIND_CONTROL__TOKEN" in err
