"""The ``tradewind`` command. Each command group lives in its own module and
registers itself on ``app``; ``main`` turns every failure into one line on
stderr, ``tradewind: <what is wrong and what to do>``, with exit status 2 for
usage and settings and 1 for runtime failures. ``--debug`` (or
``TRADEWIND_DEBUG=1``) shows the traceback instead."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from tradewind.cli.errors import CliError, debugging, describe_failure
from tradewind.config import ConfigError


def _plain_flags() -> None:
    """Help shows no ``<bool>`` after on/off flags (they take no value) and no
    Python type after an argument that names its value (``NAME``)."""
    from typer.core import TyperArgument, TyperOption

    shown = TyperOption.display_type_rich
    shown_arg = TyperArgument.display_type_rich

    def display(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    def display_arg(self: TyperArgument, ctx: Any) -> str | None:
        return None if self.metavar else shown_arg(self, ctx)

    TyperOption.display_type_rich = display  # type: ignore[method-assign]
    TyperArgument.display_type_rich = display_arg  # type: ignore[method-assign,assignment]


_plain_flags()

app = typer.Typer(
    name="tradewind",
    no_args_is_help=True,
    add_completion=True,
    help="Tradewind: crypto market data, strategies, risk, execution and persistence.",
    pretty_exceptions_enable=False,
)


def _version() -> str:
    try:
        return version("tradewind")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tradewind {_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of a failure (also TRADEWIND_DEBUG=1)."
    ),
) -> None:
    """Tradewind: crypto market data, strategies, risk, execution and persistence."""


_COMMAND_MODULES = (
    "run",
    "migrate_cmd",
    "backtest",
    "export",
    "control",
    "fake_exchange",
    "service_cmd",
    "strategies_cmd",
    "runs_cmd",
    "acl_cmd",
    "trade",
    "download",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"tradewind.cli.{_name}")


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or debugging()


def _fail(message: str, code: int) -> None:
    print(f"tradewind: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = _debugging(args)
    try:
        rc = app(args=args, prog_name="tradewind", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        sys.exit(2)
    except ClickException as exc:
        if debug:
            raise
        ctx = getattr(exc, "ctx", None)
        where = f"'{ctx.command_path} --help'" if ctx is not None else "'tradewind --help'"
        _fail(f"{exc.format_message()} (see {where})", exc.exit_code)
    except typer.Abort:
        _fail("interrupted", 130)
    except ConfigError as exc:
        if debug:
            raise
        _fail(str(exc), 2)
    except CliError as exc:
        if debug:
            raise
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if debug:
            raise
        _fail(describe_failure(exc), 1)
    if isinstance(rc, int) and rc:
        sys.exit(rc)
