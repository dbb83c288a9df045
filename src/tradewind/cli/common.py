"""Helpers every command shares: settings with overrides, the event loop."""

from __future__ import annotations

from typing import Any, TypeVar

import typer

from tradewind.config import ConfigError, Settings, load_settings

T = TypeVar("T")


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"tradewind: {exc}", err=True)
        raise typer.Exit(2) from None


def parse_speed(value: str) -> float:
    if value.lower() in ("max", "0"):
        return 0.0
    try:
        speed = float(value)
    except ValueError:
        raise typer.BadParameter("use a positive number (1 = real time) or 'max'") from None
    if not speed > 0:
        raise typer.BadParameter("use a positive number (1 = real time) or 'max'")
    return speed


def parse_params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
