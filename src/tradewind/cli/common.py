"""Helpers every command shares: settings with overrides, the event loop."""

from __future__ import annotations

from typing import Any, TypeVar

import typer

from tradewind.cli.errors import UsageProblem
from tradewind.config import ConfigError, Settings, load_settings

T = TypeVar("T")


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None


def parse_speed(value: str, flag: str = "--speed") -> float:
    """``max`` (0: no pauses) or a positive factor of real time."""
    if value.strip().lower() == "max":
        return 0.0
    try:
        speed = float(value)
    except ValueError:
        speed = float("nan")
    if not speed > 0 or speed == float("inf"):
        raise UsageProblem(f"{flag} {value}: use a positive number (1 = real time) or 'max'")
    return speed
