"""Logging: JSON lines for services, readable lines on a terminal; secrets are
never passed to a logger, so nothing here needs to scrub them."""

from __future__ import annotations

import logging
import sys

import structlog

from tradewind.config import Settings


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """Bound to the stderr of the moment, not of configuration time, so a
    redirected or replaced stream (tests, daemons) never leaves a closed one."""
    return structlog.PrintLogger(sys.stderr)


# Libraries that log each frame they send or receive at DEBUG.
FRAME_LOGGERS = ("websockets",)


def configure_logging(settings: Settings, console: bool = False) -> None:
    trace = settings.log_level == "trace"
    level = logging.DEBUG if trace else getattr(logging, settings.log_level.upper())
    if console:
        level = max(level, logging.WARNING)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s", force=True)
    for name in FRAME_LOGGERS:
        logging.getLogger(name).setLevel(level if trace else max(level, logging.INFO))
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json and not console
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
