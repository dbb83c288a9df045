"""The Redis client does not ask servers for maintenance notifications.

redis-py (RESP3, ``enabled="auto"``) sends ``CLIENT MAINT_NOTIFICATIONS ON`` on
every new connection; Redis 7 answers with an error that is logged for every
connection of every service. The bus turns the feature off where it builds
the client, so nothing is sent and nothing is logged."""

from __future__ import annotations

import logging

import pytest

from tradewind.bus.redis import RedisBus


async def test_no_maintenance_notification_handshake(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = RedisBus(redis_url, prefix=redis_prefix, partitions=2)
    with caplog.at_level(logging.DEBUG, logger="redis"):
        await bus.start()
        try:
            await bus.redis.ping()
            pool = bus.redis.connection_pool
            conn = await pool.get_connection()
            try:
                config = conn.maint_notifications_config
                assert config is None or config.enabled is False
            finally:
                await pool.release(conn)
        finally:
            await bus.close()
    noisy = [r.getMessage() for r in caplog.records if "aintenance notification" in r.getMessage()]
    assert noisy == []
