"""Logging: JSON lines for services, readable lines on a terminal; secrets are
never passed to a logger, so nothing here needs to scrub them."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any

import structlog

from tradewind.config import Settings


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """Bound to the stderr of the moment, not of configuration time, so a
    redirected or replaced stream (tests, daemons) never leaves a closed one."""
    return structlog.PrintLogger(sys.stderr)


# Libraries that log each frame they send or receive at DEBUG.
FRAME_LOGGERS = ("websockets",)


class _StderrHandler(logging.StreamHandler[Any]):
    """A handler on the stderr of the moment, for the same reason."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        return None


def configure_logging(settings: Settings, console: bool = False) -> None:
    """structlog for our own loggers, and the same processors and renderer for
    every standard-library logger (alembic, asyncpg, redis-py, asyncio) and for
    Python warnings, so a service's stderr is one JSON object per line."""
    trace = settings.log_level == "trace"
    level = logging.DEBUG if trace else getattr(logging, settings.log_level.upper())
    if console:
        level = max(level, logging.WARNING)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json and not console
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in FRAME_LOGGERS:
        logging.getLogger(name).setLevel(level if trace else max(level, logging.INFO))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


class LogThrottle:
    """At most one log line per key and interval; what is suppressed meanwhile
    is counted into the next line. A flood of poison messages then costs a
    line per interval with a count, not a line (and a traceback) per message."""

    def __init__(
        self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._seen: dict[Hashable, list[float]] = {}

    def allow(self, key: Hashable) -> int | None:
        """None: stay quiet. Otherwise log now, saying how many occurrences of
        ``key`` were not logged since its last line."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None or now - seen[0] >= self.interval_s:
            suppressed = 0 if seen is None else int(seen[1])
            self._seen[key] = [now, 0]
            return suppressed
        seen[1] += 1
        return None
