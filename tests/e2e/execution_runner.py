"""The execution service alone in a process, configured from the environment,
for the crash test (``tradewind service execution`` does the same with the
HTTP endpoints around it). Prints ``ready`` once started; SIGTERM stops it."""

from __future__ import annotations

import asyncio
import signal
import sys

from tradewind.bus import create_bus
from tradewind.clock import WallClock
from tradewind.config import load_settings
from tradewind.instruments import InstrumentRegistry
from tradewind.services.base import ServiceContext
from tradewind.services.execution import ExecutionService


async def main(consumer: str) -> None:
    settings = load_settings()
    bus = create_bus(settings)
    await bus.start()
    ctx = ServiceContext(
        bus=bus,
        clock=WallClock(),
        settings=settings,
        instruments=InstrumentRegistry.load(),
        consumer=consumer,
        durable_state=True,
    )
    svc = ExecutionService(ctx)
    await svc.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await svc.stop(5)
    await bus.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "0"))
