from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tradewind.config import ConfigError, load_settings


def test_defaults_are_the_embedded_mode() -> None:
    s = load_settings()
    assert s.bus.kind == "memory"
    assert s.store.url.get_secret_value().startswith("sqlite:///")


def test_environment_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIND_RISK__MAX_POSITION", "0.25")
    monkeypatch.setenv("TRADEWIND_BUS__PARTITIONS", "4")
    s = load_settings()
    assert s.risk.max_position == Decimal("0.25")
    assert s.bus.partitions == 4


def test_yaml_file_is_below_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "tw.yaml"
    cfg.write_text("risk:\n  max_position: '0.5'\n  max_orders_per_second: 3\n")
    monkeypatch.setenv("TRADEWIND_CONFIG", str(cfg))
    monkeypatch.setenv("TRADEWIND_RISK__MAX_ORDERS_PER_SECOND", "9")
    s = load_settings()
    assert s.risk.max_position == Decimal("0.5")
    assert s.risk.max_orders_per_second == 9


@pytest.mark.parametrize(
    "text",
    [
        "bus:\n  redis_url: redis://:hunter2-very-secret@h:6379/0\n   bad: [\n",
        "store:\n  url: 'postgresql://u:hunter2-very-secret@h/db\n",
        'store: {url: postgresql://u:hunter2-very-secret@h/db\tx: "\\q"}\n',
    ],
)
def test_a_malformed_yaml_file_is_named_by_position_never_by_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str
) -> None:
    cfg = tmp_path / "tw.yaml"
    cfg.write_text(text)
    monkeypatch.setenv("TRADEWIND_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "hunter2" not in str(err.value) and "line" in str(err.value)
    out = subprocess.run(
        [sys.executable, "-m", "tradewind", "migrate"],
        env={**os.environ, "TRADEWIND_CONFIG": str(cfg)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "hunter2" not in out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("tradewind: ")


def test_secret_file_supplies_a_secret_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-very-secret\n")
    monkeypatch.setenv("TRADEWIND_STORE__PASSWORD_FILE", str(secret))
    s = load_settings()
    assert s.store.password is not None
    assert s.store.password.get_secret_value() == "hunter2-very-secret"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())


def test_secrets_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = "tok-" + "0123456789abcdef" * 4
    (tmp_path / "tradewind_control__token").write_text(token + "\n")
    monkeypatch.setenv("TRADEWIND_SECRETS_DIR", str(tmp_path))
    s = load_settings()
    assert s.control.token is not None and s.control.token.get_secret_value() == token


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"TRADEWIND_RISK__MAX_POSITION": "-1"}, "TRADEWIND_RISK__MAX_POSITION"),
        ({"TRADEWIND_BUS__KIND": "kafka"}, "TRADEWIND_BUS__KIND"),
        ({"TRADEWIND_BUS__PARTITIONS": "many"}, "TRADEWIND_BUS__PARTITIONS"),
        ({"TRADEWIND_HTTP__PORT": "70000"}, "TRADEWIND_HTTP__PORT"),
        ({"TRADEWIND_BUS__NOPE": "1"}, "TRADEWIND_BUS__NOPE"),
    ],
)
def test_invalid_value_names_the_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], key: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.key == key
    assert key in str(err.value)


def test_invalid_secret_value_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEWIND_STORE__PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.key == "TRADEWIND_STORE__PASSWORD_FILE"


def test_cli_exits_2_with_one_line_naming_the_key(tmp_path: Path) -> None:
    env = {**os.environ, "TRADEWIND_RISK__MAX_ORDER_NOTIONAL": "lots"}
    proc = subprocess.run(
        [sys.executable, "-m", "tradewind", "run", "-q", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "TRADEWIND_RISK__MAX_ORDER_NOTIONAL" in lines[0]
    assert not (tmp_path / "x.db").exists()


def test_bad_strategy_parameter_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradewind",
            "run",
            "-q",
            "--fast",
            "0",
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "fast" in proc.stderr


def test_live_ws_with_a_bad_feed_setting_exits_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TRADEWIND_BUS__KIND": "redis",
        "TRADEWIND_FEED__SOURCE": "live",
        "TRADEWIND_FEED__CHANNELS": '{"binance": ["nosuchchannel"]}',
        "TRADEWIND_HTTP__PORT": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tradewind", "service", "ws"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "TRADEWIND_FEED__CHANNELS" in proc.stderr
