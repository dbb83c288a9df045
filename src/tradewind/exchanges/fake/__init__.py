"""The fake exchange: real exchange protocols on 127.0.0.1, replaying the
recorded market data, with faults on command (see ``server.FakeExchange``)."""

from tradewind.exchanges.fake.server import WS_PATHS, FakeExchange

__all__ = ["WS_PATHS", "FakeExchange"]
