"""Trades already published, per symbol, so a reconnect, a subscribe snapshot
or a REST backfill never sends one twice."""

from __future__ import annotations

from collections import deque


class TradeDedup:
    """The last ``capacity`` trade ids of one symbol (far beyond any backfill window)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, trade_id: str) -> bool:
        return trade_id in self._ids

    def add(self, trade_id: str) -> bool:
        """True when new (and now remembered); False for a duplicate."""
        if trade_id in self._ids:
            return False
        self._ids.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True
