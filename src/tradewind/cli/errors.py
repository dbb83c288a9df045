"""Failures as one line a user can act on.

``CliError`` carries its own message and exit status (2: the input or a
setting is wrong; 1: the run failed). ``describe_failure`` names the cause of
anything else that ends a command: a service of a run that stopped on an
error that would only repeat (a database that refuses writes, a strategy that
raises), a file the system refused, or an unexpected error.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    code = 1

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageProblem(CliError):
    """Bad arguments, files or settings: exit status 2, nothing started."""

    code = 2


class RunFailed(CliError):
    """The run started and stopped on an error: exit status 1."""

    code = 1


def _root(exc: BaseException) -> BaseException:
    """The error a service ended with, under the pipeline's wrapper."""
    inner = getattr(exc, "error", None)
    return inner if isinstance(inner, BaseException) else exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def describe_failure(
    exc: BaseException, *, db: str | None = None, strategy: str | None = None
) -> str:
    root = _root(exc)
    service = getattr(exc, "service", None)
    where = f" {db}" if db else ""
    if isinstance(root, sqlite3.Error):
        text = str(root).lower()
        if "readonly" in text or "read-only" in text or "permission" in text:
            return (
                f"the database{where} refuses writes ({root}): make it writable "
                "or choose another --db"
            )
        if "full" in text or "disk i/o" in text:
            return (
                f"the database{where} cannot be written ({root}): "
                "free disk space or choose another --db"
            )
        if "locked" in text:
            return (
                f"the database{where} is locked by another process ({root}): "
                "stop it or choose another --db"
            )
        return f"the database{where} failed: {_short(root)}"
    if service == "signal":
        name = f" {strategy}" if strategy else ""
        return (
            f"strategy{name} raised {_short(root)} on its events; the run stopped "
            "(fix the strategy or its parameters; --debug shows the traceback)"
        )
    if isinstance(root, OSError):
        what = root.strerror or str(root)
        name = f": {root.filename}" if root.filename else ""
        return f"{what}{name}"
    prefix = f"service {service} stopped: " if service else "unexpected error: "
    return f"{prefix}{_short(root)} (run with --debug to see the traceback)"


def debugging() -> bool:
    import os
    import sys

    env = os.environ.get("TRADEWIND_DEBUG", "").strip().lower()
    return "--debug" in sys.argv[1:] or env in ("1", "true", "yes", "on")


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """A command's ``CliError`` as its one line and exit status, also when the
    command is invoked without ``main`` (typer's test runner)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            if debugging():
                raise
            typer.echo(f"tradewind: {exc}", err=True)
            raise typer.Exit(exc.code) from None

    return wrapper
