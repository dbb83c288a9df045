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
from pathlib import Path
from urllib.parse import urlsplit

CHUNK = 1 << 16


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

    def _fetch_to(self, target: str, dest: Path) -> HttpResponse:
        """GET ``target`` into ``dest``, from where a previous attempt stopped
        (``Range``). What arrived before a cut connection stays in the file,
        so the next attempt continues from there. Non-2xx bodies are returned,
        not written."""
        offset = dest.stat().st_size if dest.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        conn = self._conn()
        try:
            conn.request("GET", target, headers=headers)
            r = conn.getresponse()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if r.status in (200, 206):
                expected = r.length
                got = 0
                with dest.open("ab" if r.status == 206 else "wb") as f:
                    try:
                        while chunk := r.read(CHUNK):
                            f.write(chunk)
                            got += len(chunk)
                    except http.client.IncompleteRead as cut:
                        f.write(cut.partial)
                        raise
                # read(n) returns short at a closed connection instead of raising.
                if expected is not None and got < expected:
                    raise http.client.IncompleteRead(b"", expected - got)
                body = b""
            else:
                body = r.read()
        except BaseException:
            conn.close()
            self._local.conn = None
            raise
        self._local.last = time.monotonic()
        if r.will_close:
            conn.close()
            self._local.conn = None
        return HttpResponse(r.status, hdrs, body)

    async def fetch_to(self, target: str, dest: Path, timeout_s: float) -> HttpResponse:
        """``_fetch_to`` off the loop; ``timeout_s`` bounds the whole transfer
        (each read is bounded by the client's socket timeout)."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._fetch_to, target, dest)
        return await asyncio.wait_for(fut, timeout_s)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._mu:
            for c in self._conns:
                c.close()
            self._conns.clear()
