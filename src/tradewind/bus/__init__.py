"""The bus: one interface (``Bus``), an in-process and a Redis Streams implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind.bus.base import (
    Bus,
    BusError,
    GroupInfo,
    Message,
    NotSettled,
    Subscription,
    TopicInfo,
)
from tradewind.bus.memory import MemoryBus

if TYPE_CHECKING:
    from tradewind.config import Settings

__all__ = [
    "Bus",
    "BusError",
    "GroupInfo",
    "MemoryBus",
    "Message",
    "NotSettled",
    "Subscription",
    "TopicInfo",
    "create_bus",
]


def create_bus(settings: Settings) -> Bus:
    b = settings.bus
    if b.kind == "memory":
        return MemoryBus(
            capacity=b.capacity, max_deliveries=b.max_deliveries, claim_idle_ms=b.claim_idle_ms
        )
    from tradewind.bus.redis import RedisBus

    return RedisBus.from_settings(settings)
