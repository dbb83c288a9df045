"""A service's stderr is one JSON object per line: our structlog loggers, the
standard-library loggers of alembic, asyncpg, redis-py and asyncio, and Python
warnings all go through the same processors and renderer."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.e2e.cluster import clean_env

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, logging, warnings
    import structlog
    from tradewind.config import load_settings
    from tradewind.observability.logging import configure_logging

    configure_logging(load_settings())
    logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
    warnings.warn("MAINT_NOTIFICATIONS are not supported", UserWarning)
    try:
        raise ConnectionResetError("connection was closed in the middle of operation")
    except ConnectionResetError:
        logging.getLogger("asyncpg.pool").exception("connection lost")
    structlog.get_logger("tradewind.test").error("ours", key=1)

    async def boom():
        raise ValueError("never retrieved")

    async def main():
        task = asyncio.ensure_future(boom())
        await asyncio.sleep(0.01)
        del task
        gc.collect()

    asyncio.run(main())
    """
)


def test_every_line_is_json_whoever_logs_it() -> None:
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", SCRIPT],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines()]
    by_logger = {r.get("logger", "tradewind"): r for r in records}
    assert by_logger["alembic.runtime.migration"]["event"] == "Context impl PostgresqlImpl."
    assert "MAINT_NOTIFICATIONS" in by_logger["py.warnings"]["event"]
    assert "ConnectionResetError" in by_logger["asyncpg.pool"]["exception"]
    assert "never retrieved" in by_logger["asyncio"]["exception"]
    assert by_logger["tradewind"]["key"] == 1
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)
