"""Small async HTTP for venue REST calls, on the standard library.

Requests run on a few worker threads with ``http.client`` (keep-alive per
thread, TLS, chunked bodies handled by the standard library), so the event
loop never blocks; every request has a socket timeout and an overall one.
Connections idle for longer than ``max_idle_s`` are replaced before use, so an
order is not written into a connection the server has already closed.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpClient:
    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        connect_timeout_s: float,
        workers: int = 4,
        max_idle_s: float = 4.0,
    ) -> None:
        u = urlsplit(base_url)
        self.scheme = u.scheme or "http"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.scheme == "https" else 80)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_idle_s = max_idle_s
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tw-http")
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._mu = threading.Lock()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        last: float = getattr(self._local, "last", 0.0)
        if conn is not None and time.monotonic() - last > self.max_idle_s:
            conn.close()
            conn = None
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self.host, self.port, timeout=self.connect_timeout_s)
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout_s)
            self._local.conn = conn
            with self._mu:
                self._conns.append(conn)
        return conn

    def _do(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> HttpResponse:
        conn = self._conn()
        try:
            conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        except BaseException:
            conn.close()
            self._local.conn = None
            raise
        self._local.last = time.monotonic()
        if r.will_close:
            conn.close()
            self._local.conn = None
        return HttpResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """One request; raises ``OSError``, ``TimeoutError`` or ``http.client.HTTPException``."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._do, method, target, body, headers or {})
        return await asyncio.wait_for(fut, self.timeout_s + self.connect_timeout_s + 1.0)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._mu:
            for c in self._conns:
                c.close()
            self._conns.clear()
