"""Binance's public history (data.binance.vision): one zip a day per symbol
and kind, each with a ``.CHECKSUM`` file (SHA-256), turned into the CSV
layouts ``run`` and ``backtest`` detect (``csv_source``).

Why the daily archives rather than REST ``/api/v3/aggTrades`` pages: they hold
every trade of a day in one request, weigh nothing against the API's request
weight, and come with a checksum, so a file is known to be complete. Each day
is fetched into ``<zip>.part`` and resumed with ``Range`` after a cut; a day's
CSV is written under a temporary name and renamed only once its archive
matched the checksum, so a CSV present is a day finished, and a second run
skips it. The CSV gets the header row of its layout: with it, format detection
is certain.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import re
import time
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from tradewind.exchanges.common.history import HEADERS, Day, DaySource, HistoryError
from tradewind.exchanges.common.http import HttpClient

BASE_URL = "https://data.binance.vision"
KINDS = ("trades", "aggTrades", "klines")
INTERVALS = frozenset(
    {"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"}
)
SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")
RETRY_AFTER_MAX_S = 120.0
CHECKSUM_LINE = re.compile(rb"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")


def archive_name(kind: str, symbol: str, day: date, interval: str) -> str:
    label = interval if kind == "klines" else kind
    return f"{symbol}-{label}-{day.isoformat()}"


def archive_path(kind: str, symbol: str, day: date, interval: str) -> str:
    sub = f"{symbol}/{interval}" if kind == "klines" else symbol
    return f"/data/spot/daily/{kind}/{sub}/{archive_name(kind, symbol, day, interval)}.zip"


class History:
    """Fetches days one after another, pacing requests and honouring
    ``Retry-After`` on 429/418; 5xx and cut connections are retried a few
    times, resuming the archive where it stopped."""

    def __init__(
        self,
        base_url: str = BASE_URL,
        *,
        timeout_s: float = 30.0,
        transfer_timeout_s: float = 900.0,
        retries: int = 3,
        requests_per_s: float = 5.0,
        backoff_s: float = 0.5,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise HistoryError(f"--base-url {base_url}: use http(s)://host[:port]")
        self.base_url = base_url.rstrip("/")
        self.prefix = u.path.rstrip("/")
        self.http = HttpClient(base_url, timeout_s, min(timeout_s, 10.0), workers=1)
        self.transfer_timeout_s = transfer_timeout_s
        self.retries = retries
        self.min_gap_s = 1.0 / requests_per_s
        self.backoff_s = backoff_s
        self._last = 0.0
        self.throttled = 0
        self.retried = 0
        self.weight_waits = 0
        self.resumes = 0

    async def close(self) -> None:
        await self.http.close()

    async def _pace(self) -> None:
        wait = self._last + self.min_gap_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last = time.monotonic()

    async def _get(self, target: str, dest: Path | None) -> tuple[int, bytes]:
        """Status and body (empty when written to ``dest``), after retrying
        what the server or the network says is worth retrying."""
        url = self.base_url + target[len(self.prefix) :]
        for attempt in range(self.retries + 1):
            await self._pace()
            try:
                if dest is None:
                    r = await self.http.request("GET", target)
                else:
                    if _size(dest):
                        self.resumes += 1
                    r = await self.http.fetch_to(target, dest, self.transfer_timeout_s)
            except TimeoutError:
                raise HistoryError(f"{url}: no complete answer in time") from None
            except (OSError, http.client.HTTPException) as exc:
                if attempt == self.retries:
                    raise HistoryError(f"cannot download {url}: {_why(exc)}") from None
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2**attempt)
                continue
            if r.status in (429, 418):
                self.throttled += 1
                if attempt == self.retries:
                    raise HistoryError(f"{url}: still rate limited (HTTP {r.status})")
                await asyncio.sleep(_retry_after(r.headers.get("retry-after"), self.backoff_s))
                continue
            if r.status >= 500 and attempt < self.retries:
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2**attempt)
                continue
            return r.status, r.body
        raise AssertionError("unreachable")

    async def day(
        self, kind: str, symbol: str, day: date, out_dir: Path, interval: str = "1m"
    ) -> Day:
        name = archive_name(kind, symbol, day, interval)
        final = out_dir / f"{name}.csv"
        if final.exists():
            return Day(symbol, day, "present", final)
        target = self.prefix + archive_path(kind, symbol, day, interval)
        status, body = await self._get(target + ".CHECKSUM", None)
        if status == 404:
            return Day(symbol, day, "missing")
        if status != 200:
            raise HistoryError(f"{self.base_url}{target}.CHECKSUM: HTTP {status}")
        want = _checksum(body, f"{name}.zip", f"{self.base_url}{target}.CHECKSUM")
        part = out_dir / f"{name}.zip.part"
        resumes_before = self.resumes
        for fresh in (False, True):
            if fresh:
                part.unlink(missing_ok=True)
            status, _ = await self._get(target, part)
            if status == 404:
                part.unlink(missing_ok=True)
                return Day(symbol, day, "missing")
            if status == 416:
                pass  # asked from the end: the part holds the whole archive (checked next)
            elif status not in (200, 206):
                raise HistoryError(f"{self.base_url}{target}: HTTP {status}")
            if await asyncio.to_thread(_sha256, part) == want:
                break
        else:
            part.unlink(missing_ok=True)
            raise HistoryError(
                f"{self.base_url}{target}: the archive does not match its .CHECKSUM "
                "(downloaded twice); try again later"
            )
        rows = await asyncio.to_thread(_to_csv, part, final, HEADERS[kind])
        part.unlink()
        return Day(symbol, day, "downloaded", final, rows, self.resumes > resumes_before)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__ if not str(exc) else str(exc).splitlines()[0]


def _retry_after(value: str | None, default: float) -> float:
    try:
        wait = float(value) if value is not None else default
    except ValueError:
        wait = default
    return min(max(wait, 0.0), RETRY_AFTER_MAX_S)


def _checksum(body: bytes, name: str, where: str) -> str:
    m = CHECKSUM_LINE.match(body.strip())
    if m is None or m.group(2).decode(errors="replace") != name:
        raise HistoryError(f"{where}: not a SHA-256 line for {name}")
    return m.group(1).decode().lower()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _to_csv(archive: Path, final: Path, header: str) -> int:
    """The archive's one CSV, with the layout's header row (older archives
    have none, newer ones their own), written whole before it is renamed."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = [n for n in z.namelist() if n.endswith(".csv")]
            if len(members) != 1:
                raise HistoryError(f"{archive.name}: expected one CSV inside, found {len(members)}")
            tmp = final.with_name(final.name + ".tmp")
            rows = 0
            with z.open(members[0]) as src, tmp.open("wb") as dst:
                dst.write(header.encode() + b"\n")
                for line in src:
                    if not line.strip():
                        continue
                    if rows == 0 and not line[:1].isdigit():
                        continue  # the archive's own header
                    dst.write(line if line.endswith(b"\n") else line + b"\n")
                    rows += 1
    except zipfile.BadZipFile as exc:
        raise HistoryError(f"{archive.name}: not a zip archive ({exc})") from None
    tmp.replace(final)
    return rows


async def download(
    source_of: Callable[[date], DaySource],
    kind: str,
    symbols: list[str],
    days: list[date],
    out_dir: Path,
    interval: str = "1m",
    on_day: Callable[[Day], None] | None = None,
) -> list[Day]:
    """Every (symbol, day), in order, each from the source ``source_of``
    names for it; a symbol with no day at all is an error (most likely a
    symbol Binance does not list)."""
    out: list[Day] = []
    for symbol in symbols:
        got = []
        for d in days:
            result = await source_of(d).day(kind, symbol, d, out_dir, interval)
            got.append(result)
            if on_day is not None:
                on_day(result)
        if all(g.status == "missing" for g in got):
            where = " and ".join(sorted({source_of(d).base_url for d in days}))
            raise HistoryError(
                f"no {kind} for {symbol} on {where} from {days[0]} to {days[-1]}: "
                "unknown symbol, or not published yet"
            )
        out += got
    return out
