"""CLI conventions: --version, completion, readable help, the same options in
run and backtest, and decimals printed as people write them."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from tradewind.cli import app
from tradewind.cli.control import plain

runner = CliRunner()


def test_version_and_completion() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"tradewind {version('tradewind')}"
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in res.output and "--show-completion" in res.output


@pytest.mark.parametrize(
    "command",
    ["run", "backtest", "status", "halt", "fake-exchange", "service", "strategies", "runs"],
)
def test_help_shows_no_python_types(command: str) -> None:
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for python_type in ("<bool>", "<str>", "<int>", "<float>", "list[", "<path>"):
        assert python_type not in res.output, (command, python_type)


def _options(command: str) -> dict[str, set[str]]:
    import typer.main

    cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: set(p.opts) for p in cmd.params if p.opts and p.opts[0].startswith("-")}


def test_run_and_backtest_share_their_options() -> None:
    run, backtest = _options("run"), _options("backtest")
    shared = [
        "data",
        "strategy",
        "param",
        "set_",
        "fast",
        "slow",
        "quantity",
        "bar_interval",
        "fmt",
        "symbol",
        "exchange",
        "db",
        "quiet",
    ]
    for name in shared:
        assert run[name] == backtest[name], name


def test_decimals_are_normalized() -> None:
    payload = {"pnl": {"fees": "0E-14"}, "positions": [{"mark": "61842.000000000000"}]}
    assert plain(payload) == {"pnl": {"fees": "0"}, "positions": [{"mark": "61842"}]}
    assert plain({"symbol": "1INCHUSDT", "state": "active", "n": 3}) == {
        "symbol": "1INCHUSDT",
        "state": "active",
        "n": 3,
    }
