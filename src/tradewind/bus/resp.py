"""A lean pipelined RESP2 connection for the bus's hot path.

Why not redis-py for everything: its asyncio client spends about 140 µs of
CPU per command (pool checkout, locks, response callbacks), twice what the
socket and the parser need. With four consumer processes each doing a fetch
and a commit per batch on two cores, that overhead alone saturates the
machine at 1k ticks/s and every wake-up queues behind it. Measured on the
same machine (bench/README.md, "Redis client"): a bare three-hop
XREADGROUP→XADD relay at 1k msgs/s has p50/p99 1.7/5.1 ms with redis-py,
2.8/9.6 ms with valkey-glide, and 0.54/1.8 ms with this connection.

It speaks only what the hot path needs: a command, its reply as hiredis
returns it (bytes, ints, lists, ``None``), errors as redis-py's
``ResponseError`` so callers match ``NOSCRIPT``/``NOGROUP`` as before. A
reply that says the server cannot serve *yet* (loading its data, a busy
script, a failover) is a ``RetryableReplyError``: callers retry it with
backoff as they retry a lost connection.
Requests from several tasks share the connection in order (replies come back
in request order). A timeout or a lost connection fails every request in
flight with a transient error and drops the connection, because later
replies could no longer be matched to requests; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

__all__ = ["RETRYABLE_CODES", "RespConnection", "RetryableReplyError", "retryable_reply"]

Arg = bytes | str | int | float

RETRYABLE_CODES = frozenset(
    {
        "LOADING",  # loading its RDB/AOF after a restart
        "BUSY",  # a script or function runs past busy-reply-threshold
        "TRYAGAIN",  # a multi-key operation during resharding
        "MASTERDOWN",  # a replica that lost its primary
        "READONLY",  # a primary demoted to replica (failover)
        "UNBLOCKED",  # a blocked read ended by a role change
        "CLUSTERDOWN",
        "NOREPLICAS",
        "FAILOVER",
    }
)
"""Error codes of replies that mean "not now": the same command can succeed
once the server has loaded, the script ended or a new primary took over."""


class RetryableReplyError(ResponseError):
    """An error reply with a code in ``RETRYABLE_CODES``."""


def _code(message: str) -> str:
    return message.split(" ", 1)[0]


def retryable_reply(exc: BaseException) -> bool:
    """Whether ``exc`` is an error reply worth retrying (from this connection or
    redis-py, which strips some codes into exception classes of their own)."""
    if isinstance(exc, RetryableReplyError):
        return True
    if not isinstance(exc, ResponseError):
        return False
    if isinstance(exc, (ReadOnlyError, ClusterDownError, TryAgainError)):
        return True
    return _code(str(exc)) in RETRYABLE_CODES


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.waiters
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiters:
                self.fail(ConnectionError("redis sent a reply nobody asked for"))
                return
            fut = waiters.popleft()
            if fut.done():
                continue
            if isinstance(reply, ResponseError):
                if _code(str(reply)) in RETRYABLE_CODES:
                    reply = RetryableReplyError(str(reply))
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, exc: BaseException) -> None:
        """Fail everything in flight and close: unanswered replies are unmatchable now."""
        if self.lost is None:
            self.lost = exc
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def _tls_context(opts: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS settings a ``rediss://`` URL may carry, read as redis-py reads them."""
    ctx = ssl.create_default_context(cafile=opts.get("ssl_ca_certs"))
    reqs = str(opts.get("ssl_cert_reqs", "required")).lower()
    if reqs not in ("required", "optional", "none"):
        raise ValueError(f"ssl_cert_reqs must be required, optional or none, not {reqs!r}")
    ctx.check_hostname = reqs == "required" and bool(opts.get("ssl_check_hostname", True))
    ctx.verify_mode = {
        "required": ssl.CERT_REQUIRED,
        "optional": ssl.CERT_OPTIONAL,
        "none": ssl.CERT_NONE,
    }[reqs]
    return ctx


class RespConnection:
    """One connection to the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        connect_timeout_s: float = 5.0,
        client_name: str | None = None,
    ) -> None:
        opts = parse_url(url)
        self._host: str = opts.get("host", "localhost")
        self._port: int = int(opts.get("port", 6379))
        self._path: str | None = opts.get("path")
        self._db = int(opts.get("db", 0) or 0)
        self._username: str | None = opts.get("username")
        self._password: str | None = opts.get("password")
        self._client_name = client_name
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._ssl = _tls_context(opts) if opts.get("connection_class") is SSLConnection else None
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self.round_trips = 0
        """Commands sent, not counting the handshake of each connection."""

    # --- connection --------------------------------------------------------------------

    async def _protocol(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        task = self._connecting
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._connecting is task:
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            if self._path is not None:
                coro = loop.create_unix_connection(_Protocol, self._path)
            else:
                coro = loop.create_connection(_Protocol, self._host, self._port, ssl=self._ssl)
            _transport, proto = await asyncio.wait_for(coro, self.connect_timeout_s)
        except TimeoutError:
            raise TimeoutError(f"redis connect timed out after {self.connect_timeout_s}s") from None
        hello: list[tuple[Arg, ...]] = []
        if self._password is not None:
            hello.append(
                ("AUTH", self._username, self._password)
                if self._username
                else ("AUTH", self._password)
            )
        if self._db:
            hello.append(("SELECT", self._db))
        if self._client_name:
            hello.append(("CLIENT", "SETNAME", self._client_name))
        if hello:
            try:
                await self._send(proto, hello, self.connect_timeout_s)
            except BaseException as exc:
                proto.fail(ConnectionError(f"redis handshake failed: {exc}"))
                raise
        self._proto = proto
        return proto

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.fail(ConnectionError("redis connection closed"))
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None

    # --- requests ----------------------------------------------------------------------

    async def call(self, *args: Arg, timeout_s: float | None = None) -> Any:
        """One command's reply; ``timeout_s`` adds to the default (for BLOCK reads)."""
        proto = await self._protocol()
        self.round_trips += 1
        budget = self.timeout_s + (timeout_s or 0.0)
        replies = await self._send(proto, [args], budget)
        return replies[0]

    async def pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Several commands in one write, their replies in order (one round trip)."""
        proto = await self._protocol()
        self.round_trips += 1
        return await self._send(proto, list(commands), self.timeout_s)

    async def _send(
        self, proto: _Protocol, commands: list[tuple[Arg, ...]], timeout_s: float
    ) -> list[Any]:
        transport = proto.transport
        if proto.lost is not None or transport is None or transport.is_closing():
            raise ConnectionError("redis connection is closed")
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in commands]
        proto.waiters.extend(futs)
        pack: Any = hiredis.pack_command  # its stub takes 1-tuples only
        transport.write(b"".join([pack(c) for c in commands]))
        timer = loop.call_later(
            timeout_s, proto.fail, TimeoutError(f"redis reply timed out after {timeout_s:g}s")
        )
        try:
            return [await f for f in futs]
        finally:
            timer.cancel()

    async def evalsha(
        self, script: str, sha: bytes, keys: Sequence[str], args: Sequence[Arg]
    ) -> Any:
        """EVALSHA, loading the script once when the server does not know it
        (first use, or after a restart or SCRIPT FLUSH)."""
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.call("SCRIPT", "LOAD", script)
        return await self.call("EVALSHA", sha, len(keys), *keys, *args)
