"""The ``tradewind`` command. Each command group lives in its own module and
registers itself on ``app``; ``main`` turns configuration errors into one line
and exit status 2."""

from __future__ import annotations

import importlib
import sys

import typer

from tradewind.config import ConfigError

app = typer.Typer(
    name="tradewind",
    no_args_is_help=True,
    add_completion=False,
    help="Tradewind: crypto market data, strategies, risk, execution and persistence.",
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = ("run", "migrate_cmd", "backtest", "control", "fake_exchange", "service_cmd")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"tradewind.cli.{_name}")


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"tradewind: {exc}", file=sys.stderr)
        sys.exit(2)
