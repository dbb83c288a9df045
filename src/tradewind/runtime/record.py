"""``tradewind record``: the live feeds alone, every raw message to a file."""

from __future__ import annotations

import asyncio

from tradewind.config import Settings
from tradewind.exchanges.common.recording import Recorder
from tradewind.exchanges.feeds import Feeds, run_feeds


async def record_feeds(settings: Settings, recorder: Recorder, stopping: asyncio.Event) -> int:
    """Until ``stopping``; returns the events the frames made (parsed as the
    feeds parse them, so a bad frame is counted, and recorded all the same)."""
    feeds = Feeds(settings)
    feeds.record_to(recorder)
    recorder.start()
    events = 0
    try:
        async for batch in run_feeds(settings, stopping, feeds):
            events += len(batch)
    finally:
        await asyncio.to_thread(recorder.close)
    return events
