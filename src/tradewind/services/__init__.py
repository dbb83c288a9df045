"""The five services; each is given its bus, store, clock and settings."""

from __future__ import annotations

from tradewind.services.base import Service, ServiceContext
from tradewind.services.db_writer import DbWriterService
from tradewind.services.execution import ExecutionService
from tradewind.services.risk import RiskService
from tradewind.services.signal import SignalService
from tradewind.services.ws import WsService

SERVICES: dict[str, type[Service]] = {
    s.name: s for s in (WsService, SignalService, RiskService, ExecutionService, DbWriterService)
}

__all__ = [
    "SERVICES",
    "DbWriterService",
    "ExecutionService",
    "RiskService",
    "Service",
    "ServiceContext",
    "SignalService",
    "WsService",
]
