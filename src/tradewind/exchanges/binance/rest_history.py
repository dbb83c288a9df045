"""Binance spot history through the REST API (``/api/v3/aggTrades``,
``/api/v3/klines``), for what the daily archives do not hold yet (today) or
when asked; written in the same CSV layouts and file names as the archives
(``history``), so ``run`` and ``backtest`` read both alike.

Why each choice:

- aggregate trades are paged by ``fromId`` (1000 a page), the one cursor that
  cannot skip or repeat a row; only the day's first row is found by time, in
  one-hour ``startTime``/``endTime`` windows (Binance refuses wider ones with
  -1127). A day that follows a finished day of the same file layout starts at
  that day's last id + 1, so ids are checked across days as well;
- klines are paged by open time (1000 a page); only closed klines are written;
- rows go page by page into ``<name>.partial.csv`` (header first), renamed to
  ``<name>.csv`` once the day is over and complete. A rerun continues a
  partial file after its last id / open time (a torn last line is cut off),
  and skips finished days;
- request weight: every answer's ``X-MBX-USED-WEIGHT-<n><unit>`` says what the
  IP used in the current window; a request that would pass ``weight_limit``
  waits for the next window instead of being refused. 429/418 are waited out
  for their ``Retry-After``; cut connections and 5xx are retried with backoff;
- gaps: an aggregate id jump is rows the venue numbered and did not send
  (``Day.lost``, an error); a missing kline interval is time the venue has no
  kline for, as during an outage (``Day.holes``, reported).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from tradewind.exchanges.binance.history import (
    RETRY_AFTER_MAX_S,
    _retry_after,
    _why,
    archive_name,
)
from tradewind.exchanges.common.history import (
    DAY_MS,
    HEADERS,
    HOUR_MS,
    INTERVAL_MS,
    Day,
    HistoryError,
    day_ms,
    hole,
    last_row,
    rows_in,
)
from tradewind.exchanges.common.http import HttpClient

REST_URL = "https://api.binance.com"
KINDS = ("aggTrades", "klines")
PAGE = 1000
WEIGHT = {"/api/v3/aggTrades": 4, "/api/v3/klines": 2}
"""Request weight of one call with ``limit`` 1000, as Binance documents it."""
WEIGHT_LIMIT = 6000
"""Binance spot's REQUEST_WEIGHT limit a minute (``exchangeInfo`` ``rateLimits``)."""
_USED_WEIGHT = re.compile(r"^x-mbx-used-weight-(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rest_kind(kind: str) -> str:
    """REST has no day-wide public trades: ``trades`` come as aggregate trades."""
    return "aggTrades" if kind == "trades" else kind


class RestHistory:
    def __init__(
        self,
        base_url: str = REST_URL,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        weight_limit: int = WEIGHT_LIMIT,
        page: int = PAGE,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise HistoryError(f"--rest-url {base_url}: use http(s)://host[:port]")
        self.base_url = base_url.rstrip("/")
        self.prefix = u.path.rstrip("/")
        self.http = HttpClient(base_url, timeout_s, min(timeout_s, 10.0), workers=1)
        self.retries = retries
        self.backoff_s = backoff_s
        self.weight_limit = weight_limit
        self.page = page
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.throttled = 0
        self.weight_waits = 0
        self.retried = 0
        self._used: tuple[int, int, int] | None = None
        """(window length s, window index, weight used) from the last answer."""

    async def close(self) -> None:
        await self.http.close()

    # --- requests -------------------------------------------------------------
    async def _spend(self, weight: int) -> None:
        if self._used is None:
            return
        window_s, index, used = self._used
        now = time.time()
        if int(now // window_s) == index and used + weight > self.weight_limit:
            self.weight_waits += 1
            await asyncio.sleep((index + 1) * window_s - now + 0.25)

    def _note_weight(self, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            m = _USED_WEIGHT.match(name)
            if m is None:
                continue
            window_s = int(m.group(1)) * _UNIT_S[m.group(2)]
            if value.isdigit():
                self._used = (window_s, int(time.time() // window_s), int(value))
            return

    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        target = f"{self.prefix}{path}?{urlencode(params)}"
        url = self.base_url + target[len(self.prefix) :]
        failures = 0
        while True:
            await self._spend(WEIGHT[path])
            try:
                r = await self.http.request("GET", target)
            except TimeoutError:
                raise HistoryError(f"{url}: no complete answer in time") from None
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                if failures > self.retries:
                    raise HistoryError(f"cannot download {url}: {_why(exc)}") from None
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (failures - 1))
                continue
            self._note_weight(r.headers)
            if r.status in (429, 418):
                self.throttled += 1
                failures += 1
                wait = _retry_after(r.headers.get("retry-after"), self.backoff_s)
                asked = r.headers.get("retry-after", "")
                if asked.isdigit() and int(asked) > RETRY_AFTER_MAX_S:
                    raise HistoryError(
                        f"{url}: HTTP {r.status}, the IP is banned for {asked} s; try again later"
                    )
                if failures > self.retries:
                    raise HistoryError(f"{url}: still rate limited (HTTP {r.status})")
                await asyncio.sleep(wait)
                continue
            if r.status >= 500:
                failures += 1
                if failures > self.retries:
                    raise HistoryError(f"{url}: HTTP {r.status}")
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (failures - 1))
                continue
            try:
                body = json.loads(r.body)
            except ValueError:
                raise HistoryError(f"{url}: HTTP {r.status}, not JSON") from None
            if r.status != 200:
                code = body.get("code") if isinstance(body, dict) else None
                msg = body.get("msg") if isinstance(body, dict) else None
                if code == -1121:
                    raise HistoryError(
                        f"{params.get('symbol')}: Binance has no such spot symbol "
                        f"({self.base_url} says {code} {msg})"
                    )
                raise HistoryError(f"{url}: HTTP {r.status}, Binance says {code} {msg}")
            if not isinstance(body, list):
                raise HistoryError(f"{url}: expected a JSON list")
            return body

    # --- days -------------------------------------------------------------
    async def day(
        self, kind: str, symbol: str, day: date, out_dir: Path, interval: str = "1m"
    ) -> Day:
        kind = rest_kind(kind)
        name = archive_name(kind, symbol, day, interval)
        final = out_dir / f"{name}.csv"
        if final.exists():
            return Day(symbol, day, "present", final, source="rest")
        partial = out_dir / f"{name}.partial.csv"
        last = last_row(partial) if partial.exists() else None
        result = Day(symbol, day, "downloaded", final, source="rest", resumed=last is not None)
        if not partial.exists():
            partial.write_text(HEADERS[kind] + "\n")
        with partial.open("a") as out:
            if kind == "aggTrades":
                prev = (
                    out_dir / f"{archive_name(kind, symbol, day - timedelta(days=1), interval)}.csv"
                )
                after = last or (last_row(prev) if prev.exists() else None)
                complete, t_last = await self._agg_trades(symbol, day, after, out, result)
            else:
                complete, t_last = await self._klines(symbol, day, interval, last, out, result)
        result.rows = rows_in(partial)
        if result.rows == 0:
            partial.unlink()
            if complete:
                return Day(symbol, day, "missing", source="rest")
            return Day(symbol, day, "partial", None, source="rest")
        if complete:
            partial.replace(final)
        else:
            result.status, result.path, result.until_ms = "partial", partial, t_last
        return result

    async def _agg_trades(
        self, symbol: str, day: date, after: list[str] | None, out: Any, result: Day
    ) -> tuple[bool, int | None]:
        """Writes the day's aggregate trades; (day complete, last time written)."""
        path = "/api/v3/aggTrades"
        day0 = day_ms(day)
        day_end = day0 + DAY_MS
        t_last = int(after[5]) if after else None
        expected = int(after[0]) + 1 if after else None
        by_time = expected is None
        if expected is not None:
            page = await self._get(path, {"symbol": symbol, "fromId": expected, "limit": self.page})
        else:
            page = []
            t = day0
            while t < min(day_end, self.now_ms()):
                window = {"startTime": t, "endTime": min(t + HOUR_MS, day_end) - 1}
                page = await self._get(path, {"symbol": symbol, **window, "limit": self.page})
                if page:
                    break
                t += HOUR_MS
            if not page:
                return self.now_ms() >= day_end, None
        while True:
            take = [a for a in page if int(a["T"]) < day_end]
            lines = []
            for a in take:
                aid = int(a["a"])
                if expected is not None and aid != expected:
                    n = aid - expected
                    result.lost.append(f"aggTrade ids {expected}-{aid - 1} not sent ({n} rows)")
                expected = aid + 1
                t_last = int(a["T"])
                lines.append(
                    f"{aid},{a['p']},{a['q']},{a['f']},{a['l']},{a['T']},"
                    f"{_bool(a['m'])},{_bool(a.get('M', True))}\n"
                )
            out.write("".join(lines))
            out.flush()
            if len(take) < len(page):
                return True, t_last
            if len(page) < self.page and not by_time:
                return self.now_ms() >= day_end, t_last
            by_time = False  # a short hour window is not the newest trade: go on by id
            page = await self._get(path, {"symbol": symbol, "fromId": expected, "limit": self.page})

    async def _klines(
        self,
        symbol: str,
        day: date,
        interval: str,
        after: list[str] | None,
        out: Any,
        result: Day,
    ) -> tuple[bool, int | None]:
        path = "/api/v3/klines"
        step = INTERVAL_MS[interval]
        day0 = day_ms(day)
        day_end = day0 + DAY_MS
        expected = int(after[0]) + step if after else day0
        t_last = int(after[0]) if after else None
        cursor = expected
        while cursor < day_end:
            now = self.now_ms()
            params = {
                "symbol": symbol,
                "interval": interval,
                "startTime": cursor,
                "endTime": day_end - 1,
                "limit": self.page,
            }
            page = await self._get(path, params)
            closed = [k for k in page if int(k[6]) < now]
            for k in closed:
                if int(k[0]) > expected:
                    hole(result, interval, expected, int(k[0]), step)
                expected = int(k[0]) + step
                t_last = int(k[0])
            out.write("".join(",".join(str(v) for v in k) + "\n" for k in closed))
            out.flush()
            if len(page) < self.page or len(closed) < len(page):
                break
            cursor = int(page[-1][0]) + step
        now = self.now_ms()
        complete = now >= day_end
        boundary = day_end if complete else min(day_end, now // step * step)
        if t_last is not None and expected < boundary:
            hole(result, interval, expected, boundary, step)
        return complete, t_last


def _bool(v: Any) -> str:
    return "true" if v is True else "false"
