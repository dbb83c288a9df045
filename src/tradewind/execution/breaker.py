"""A circuit breaker for order sending.

After ``threshold`` consecutive venue errors it opens: nothing is sent for
``cooldown_s``; then one order may try (half-open); success closes it, a
failure opens it again. A rate-limit answer blocks sending for its
``Retry-After`` whatever the count. Business rejections are not errors of the
venue and do not count. The state is exported (``tradewind_circuit_open``),
logged on every change and makes the service unready.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from tradewind.observability import metrics

log = structlog.get_logger("tradewind.execution.breaker")


class CircuitBreaker:
    def __init__(
        self,
        exchange: str,
        threshold: int,
        cooldown_s: float,
        max_block_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.max_block_s = max_block_s
        self.clock = clock
        self.errors = 0
        self.opened_at: float | None = None
        self.blocked_until = 0.0
        self.reason = ""
        metrics.CIRCUIT_OPEN.labels(exchange).set(0)

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None or self.clock() < self.blocked_until

    def allow(self) -> tuple[bool, str]:
        """Whether an order may be sent now; the reason when not."""
        now = self.clock()
        if now < self.blocked_until:
            return False, f"rate limited by the venue for {self.blocked_until - now:.1f}s more"
        if self.opened_at is not None and now - self.opened_at < self.cooldown_s:
            return False, f"circuit open after {self.errors} errors: {self.reason}"
        return True, ""

    def success(self) -> None:
        if self.opened_at is not None:
            log.info("circuit closed", exchange=self.exchange)
        self.errors = 0
        self.opened_at = None
        self._export()

    def failure(self, reason: str, retry_after: float | None = None) -> None:
        now = self.clock()
        self.errors += 1
        self.reason = reason
        if retry_after is not None:
            self.blocked_until = max(self.blocked_until, now + min(retry_after, self.max_block_s))
            log.warning(
                "venue asked to back off", exchange=self.exchange, retry_after_s=retry_after
            )
        if self.errors >= self.threshold:
            if self.opened_at is None:
                log.error(
                    "circuit open: order sending stopped",
                    exchange=self.exchange,
                    errors=self.errors,
                    reason=reason,
                )
            self.opened_at = now
        self._export()

    def _export(self) -> None:
        metrics.CIRCUIT_OPEN.labels(self.exchange).set(1 if self.is_open else 0)
