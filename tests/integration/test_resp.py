"""The lean RESP connection: replies, errors, pipelining, and every way a
connection can fail (it must fail the requests in flight, never hang or
hand one request's reply to another)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tradewind.bus.resp import RespConnection, _tls_context

pytestmark = pytest.mark.redis

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def conn(redis_url: str) -> AsyncIterator[RespConnection]:
    c = RespConnection(redis_url, timeout_s=5.0, client_name="tw-resp-test")
    yield c
    await c.close()


async def test_replies_come_back_as_hiredis_reads_them(
    conn: RespConnection, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:resp"
    assert await conn.call("SET", key, b"\x00v") == b"OK"
    assert await conn.call("GET", key) == b"\x00v"
    assert await conn.call("DEL", key, f"{key}:none") == 1
    assert await conn.call("GET", key) is None
    sid = await conn.call("XADD", key, "*", "e", b"payload")
    assert await conn.call("XRANGE", key, "-", "+") == [[sid, [b"e", b"payload"]]]
    await conn.call("DEL", key)


async def test_a_pipeline_is_one_round_trip_with_replies_in_order(
    conn: RespConnection, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:pipe"
    before = conn.round_trips
    got = await conn.pipeline(
        [("MULTI",), ("SET", key, "1"), ("INCR", key), ("GET", key), ("EXEC",), ("DEL", key)]
    )
    assert got == [b"OK", b"QUEUED", b"QUEUED", b"QUEUED", [b"OK", 2, b"2"], 1]
    assert conn.round_trips == before + 1


async def test_an_error_reply_raises_response_error_and_the_connection_goes_on(
    conn: RespConnection,
) -> None:
    with pytest.raises(ResponseError, match="unknown command"):
        await conn.call("NOSUCHCOMMAND")
    assert await conn.call("PING") == b"PONG"


async def test_concurrent_requests_each_get_their_own_reply(
    conn: RespConnection, redis_prefix: str
) -> None:
    keys = [f"{redis_prefix}:c{i}" for i in range(200)]
    await asyncio.gather(*(conn.call("SET", k, k) for k in keys))
    got = await asyncio.gather(*(conn.call("GET", k) for k in keys))
    assert got == [k.encode() for k in keys]
    await conn.call("DEL", *keys)


async def test_evalsha_loads_a_script_the_server_does_not_know(conn: RespConnection) -> None:
    script = f"return {{ARGV[1], '{id(conn)}'}}"
    sha = hashlib.sha1(script.encode()).hexdigest().encode()
    await conn.call("SCRIPT", "FLUSH")
    assert await conn.evalsha(script, sha, [], ["a"]) == [b"a", str(id(conn)).encode()]
    assert await conn.call("SCRIPT", "EXISTS", sha) == [1]


async def test_select_and_client_name_are_sent_on_connect(redis_url: str) -> None:
    base = redis_url.rpartition("/")[0]
    c = RespConnection(f"{base}/3", timeout_s=5.0, client_name="tw-resp-db3")
    try:
        await c.call("SET", "tw-resp-db3-key", "x")
        assert await c.call("CLIENT", "GETNAME") == b"tw-resp-db3"
        other = aioredis.Redis.from_url(f"{base}/3")
        try:
            assert await other.get("tw-resp-db3-key") == b"x"
            await other.delete("tw-resp-db3-key")
        finally:
            await other.aclose()
    finally:
        await c.close()


async def test_a_killed_connection_fails_in_flight_requests_and_the_next_call_reconnects(
    conn: RespConnection, redis_url: str
) -> None:
    assert await conn.call("PING") == b"PONG"
    blocked = asyncio.ensure_future(conn.call("BLPOP", "tw-resp-never", 5, timeout_s=5))
    await asyncio.sleep(0.1)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        killed = 0
        for c in await admin.client_list():
            if c.get("name") == "tw-resp-test":
                killed += await admin.client_kill_filter(_id=c["id"])
        assert killed == 1
    finally:
        await admin.aclose()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(blocked, 5)
    assert await conn.call("PING") == b"PONG"


async def test_a_stalled_server_times_out_every_request_in_flight() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)
        writer.close()

    server, url = await _server(stall)
    c = RespConnection(url, timeout_s=0.2)
    try:
        results = await asyncio.gather(c.call("PING"), c.call("PING"), return_exceptions=True)
        assert [type(r) for r in results] == [TimeoutError, TimeoutError]
    finally:
        await c.close()
        server.close()


async def test_a_server_that_closes_mid_reply_fails_the_request_not_the_next() -> None:
    served = 0

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        await reader.read(1 << 16)
        if served == 1:
            writer.write(b"$10\r\nabc")  # a bulk string cut short
        else:
            writer.write(b"+PONG\r\n")
        await writer.drain()
        writer.close()

    server, url = await _server(half)
    c = RespConnection(url, timeout_s=2.0)
    try:
        with pytest.raises(ConnectionError):
            await c.call("PING")
        assert await c.call("PING") == b"PONG"
    finally:
        await c.close()
        server.close()


async def test_an_unsolicited_reply_is_never_handed_to_the_next_request() -> None:
    connections = 0

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while await reader.read(1 << 16):
            writer.write(b"+PONG\r\n+EXTRA\r\n")
            await writer.drain()
        writer.close()

    server, url = await _server(chatty)
    c = RespConnection(url, timeout_s=2.0)
    try:
        assert await c.call("PING") == b"PONG"
        await asyncio.sleep(0.05)
        assert await c.call("PING") == b"PONG"
        assert connections == 2
    finally:
        await c.close()
        server.close()


async def test_a_refused_handshake_raises_and_closes_the_connection() -> None:
    closed = asyncio.Event()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        writer.write(b"-WRONGPASS invalid username-password pair\r\n")
        await writer.drain()
        await reader.read(1 << 16)  # returns b"" once the client closes
        closed.set()

    server, url = await _server(refuse)
    c = RespConnection(url.replace("redis://", "redis://:secret@"), timeout_s=2.0)
    try:
        with pytest.raises(ResponseError, match="WRONGPASS"):
            await c.call("PING")
        await asyncio.wait_for(closed.wait(), 2.0)
    finally:
        await c.close()
        server.close()


async def test_connect_to_a_closed_port_is_a_connection_error() -> None:
    server, url = await _server(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    c = RespConnection(url, timeout_s=1.0, connect_timeout_s=1.0)
    with pytest.raises(OSError):
        await c.call("PING")


def test_tls_options_are_read_from_the_url() -> None:
    strict = _tls_context({})
    assert strict.verify_mode is ssl.CERT_REQUIRED and strict.check_hostname
    lax = _tls_context({"ssl_cert_reqs": "none"})
    assert lax.verify_mode is ssl.CERT_NONE and not lax.check_hostname
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        _tls_context({"ssl_cert_reqs": "sometimes"})


def test_redis_py_client_options_in_the_url_are_accepted(redis_url: str) -> None:
    """redis-py's client options in the URL (socket_timeout…) do not apply here."""
    RespConnection(redis_url + "?socket_timeout=3&health_check_interval=10", timeout_s=1.0)
