"""Public history of venues without a first-party downloader, through ccxt
(``ccxt.async_support``, so nothing blocks the event loop; ccxt's own rate
limiter paces the calls): ``fetch_trades`` and ``fetch_ohlcv`` page by page,
written as the CSV layouts the Binance downloads use (``common.history.HEADERS``),
which ``run`` and ``backtest`` detect from the header row.

A file is named ``<venue>-<BASEQUOTE>-<trades|interval>-<day>.csv``: the
readers take the symbol and, from the first token, the venue from the name
(``csv_source``), so an OKX file replays as ``okx:BTCUSDT`` without options.
Columns ccxt does not give (a kline's quote volume, trade count, taker
volumes; a trade's best-match flag) are written as 0 / true.

Paging, per venue (``VENUES``):

- klines go forward from the day's start by ``since`` (a page of ``PAGE``
  bars; Bybit also gets the page's end), a window without bars is skipped,
  only closed bars are written;
- trades go forward by ``since`` where the venue pages that way (Kraken);
  OKX's ``market/history-trades`` only pages backwards, so a day is read from
  its end back by trade id (``after``) and sorted when complete (finished
  days only). Bybit's REST serves only the latest trades, Coinbase's the
  latest of a window in whole seconds: refused, with the reason.
- klines are refused for Kraken: its OHLC serves only the latest 720 bars,
  so a past day is never complete.

Resume, holes and errors are those of the Binance REST downloader: rows go
into ``<name>.partial.csv`` page by page and a rerun continues after its last
row; a trade-id jump (OKX numbers trades per instrument without gaps) is
rows the venue did not send; a kline interval without a bar is reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewind.exchanges.ccxt.adapter import MARKET_OPTIONS, load_ccxt, point_at
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

PAGE = 100
"""Rows a request: within every supported venue's maximum for both calls."""
RETRY_AFTER_MAX_S = 120.0


@dataclass(frozen=True)
class VenueHistory:
    ccxt_id: str
    trades: str
    """forward (by ``since``), backward (OKX's history by trade id) or '' (none)."""
    sequential_ids: bool = False
    """Trade ids count up by one per instrument: a jump is rows not sent."""
    trades_params: tuple[tuple[str, str], ...] = ()
    no_trades: str = ""
    """Why the venue's REST API cannot give a day of trades (with ``trades`` '')."""
    since_ns: bool = False
    """Send a trades page's ``since`` in nanoseconds: ccxt's kraken sends
    whole seconds, and a busy second before the cursor would fill the page."""
    no_klines: str = ""
    """Why the venue's REST API cannot give a past day of klines."""
    skipped_calls: tuple[str, ...] = ()
    """ccxt calls ``load_markets`` makes that a download does not need
    (Coinbase: its app's currency and exchange-rate lists)."""
    klines_until: bool = False
    """Send each klines page's end (ccxt's ``until``): Bybit answers a
    ``start`` alone with the newest bars up to now, not those after it."""


VENUES = {
    "okx": VenueHistory("okx", "backward", True, (("method", "publicGetMarketHistoryTrades"),)),
    "bybit": VenueHistory(
        "bybit", "", no_trades="its REST API serves only its latest trades", klines_until=True
    ),
    "coinbase": VenueHistory(
        "coinbase",
        "",
        no_trades="its REST API gives the latest trades of a window given in whole seconds, "
        "so a busy day cannot be paged without loss",
        skipped_calls=("fetchCurrencies",),
    ),
    "kraken": VenueHistory(
        "kraken",
        "forward",
        since_ns=True,
        no_klines="its OHLC endpoint serves only the latest 720 bars of an interval, "
        "so a past day cannot be read complete",
    ),
}


def file_name(venue: str, symbol: str, kind: str, day: date, interval: str) -> str:
    label = interval if kind == "klines" else "trades"
    return f"{venue}-{symbol}-{label}-{day.isoformat()}"


def _text(v: Any) -> str:
    if v is None:
        # A price or size the venue left out must not become a 0 in the file.
        raise HistoryError("the venue sent a row with a missing price or amount; not written")
    d = Decimal(repr(v) if isinstance(v, float) else str(v))
    return f"{d.normalize():f}" if d == d.to_integral_value() else f"{d:f}"


def _trade_row(t: dict[str, Any]) -> str:
    if not str(t.get("id") or "").isdigit():
        raise HistoryError(
            f"trade id {t.get('id')!r} is not a number: the trades CSV layout needs one"
        )
    maker = "true" if t.get("side") == "sell" else "false"
    cost = t.get("cost")
    if cost is None and t.get("price") is not None and t.get("amount") is not None:
        cost = Decimal(_text(t["price"])) * Decimal(_text(t["amount"]))
    return (
        f"{t['id']},{_text(t['price'])},{_text(t['amount'])},{_text(cost)},"
        f"{int(t['timestamp'])},{maker},true\n"
    )


def _kline_row(k: list[Any], step: int) -> str:
    t0 = int(k[0])
    cols = [str(t0), *(_text(v) for v in k[1:6]), str(t0 + step - 1), "0", "0", "0", "0", "0"]
    return ",".join(cols) + "\n"


class CcxtHistory:
    """One venue through ccxt; ``api_url`` replaces every API URL of the
    ccxt exchange (a mirror, or the fake exchange in tests)."""

    def __init__(
        self,
        venue: str,
        api_url: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        page: int = PAGE,
        now_ms: Callable[[], int] | None = None,
        spec: VenueHistory | None = None,
    ) -> None:
        self.venue = venue
        self.spec = spec or VENUES[venue]
        self.ccxt: Any = load_ccxt()
        cls = getattr(self.ccxt, self.spec.ccxt_id)
        self.client: Any = cls({"enableRateLimit": True, "timeout": int(timeout_s * 1000)})
        self.client.options.update(MARKET_OPTIONS.get(self.spec.ccxt_id, {}))
        for call in self.spec.skipped_calls:
            self.client.has[call] = False
        fetch_markets = self.client.options.get("fetchMarkets")
        if isinstance(fetch_markets, dict) and "types" in fetch_markets:
            self.client.options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
        self.base_url = api_url or f"{venue} (ccxt)"
        if api_url is not None:
            self.client.urls["api"] = point_at(self.client.urls["api"], api_url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.page = page
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.throttled = 0
        self.retried = 0
        self.weight_waits = 0
        self._markets: dict[str, str] = {}

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, fn: str, *args: Any) -> Any:
        c = self.ccxt
        failures = 0
        while True:
            try:
                return await asyncio.wait_for(
                    getattr(self.client, fn)(*args), self.timeout_s * 2 + 5
                )
            except (c.RateLimitExceeded, c.DDoSProtection) as exc:
                self.throttled += 1
                failures += 1
                if failures > self.retries:
                    raise HistoryError(
                        f"{self.venue}: still rate limited ({type(exc).__name__})"
                    ) from None
                await asyncio.sleep(self._retry_after())
            except c.BadSymbol as exc:
                raise HistoryError(f"{self.venue}: {_first_line(exc)}") from None
            except (c.NetworkError, c.ExchangeError, TimeoutError) as exc:
                if isinstance(exc, c.ExchangeError) and not _transport(exc):
                    raise HistoryError(f"{self.venue} {fn}: {_first_line(exc)}") from None
                failures += 1
                if failures > self.retries:
                    raise HistoryError(
                        f"cannot download from {self.base_url} ({self.venue} {fn}): "
                        f"{type(exc).__name__}"
                    ) from None
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (failures - 1))
            except c.BaseError as exc:
                raise HistoryError(f"{self.venue} {fn}: {_first_line(exc)}") from None

    def _retry_after(self) -> float:
        headers = getattr(self.client, "last_response_headers", None) or {}
        for k, v in dict(headers).items():
            if str(k).lower() == "retry-after":
                try:
                    return min(max(float(v), 0.0), RETRY_AFTER_MAX_S)
                except ValueError:
                    break
        return self.backoff_s

    async def market(self, symbol: str) -> tuple[str, str]:
        """(ccxt symbol, BASEQUOTE for the file name) of a spot market given as
        ``BTC/USDT``, the venue's id (``BTC-USDT``) or ``BTCUSDT``."""
        if not self._markets:
            markets = await self._call("load_markets")
            for m in markets.values():
                if m.get("spot") and m.get("base") and m.get("quote"):
                    flat = f"{m['base']}{m['quote']}".upper()
                    for key in (m["symbol"], str(m.get("id", "")), flat):
                        self._markets[key.upper()] = m["symbol"]
        unified = self._markets.get(symbol.upper())
        if unified is None:
            raise HistoryError(f"{symbol}: {self.venue} lists no such spot market")
        base, quote = unified.split("/")
        return unified, f"{base}{quote}".upper()

    # --- days -------------------------------------------------------------
    async def day(
        self, kind: str, symbol: str, day: date, out_dir: Path, interval: str = "1m"
    ) -> Day:
        unified, flat = await self.market(symbol)
        kind = "klines" if kind == "klines" else "trades"
        if kind == "klines" and self.spec.no_klines:
            raise HistoryError(f"{self.venue} klines: {self.spec.no_klines}")
        name = file_name(self.venue, flat, kind, day, interval)
        final = out_dir / f"{name}.csv"
        if final.exists():
            return Day(symbol, day, "present", final, source="ccxt")
        partial = out_dir / f"{name}.partial.csv"
        last = last_row(partial) if partial.exists() else None
        result = Day(symbol, day, "downloaded", final, source="ccxt", resumed=last is not None)
        header = HEADERS["trades" if kind == "trades" else "klines"]
        if not partial.exists():
            partial.write_text(header + "\n")
        with partial.open("a") as out:
            if kind == "klines":
                complete, t_last = await self._klines(unified, day, interval, last, out, result)
            elif self.spec.trades == "backward":
                complete, t_last = await self._trades_backward(unified, day, last, out, result)
            else:
                before = day - timedelta(days=1)
                prev = out_dir / f"{file_name(self.venue, flat, kind, before, interval)}.csv"
                source = partial if last else prev
                after = last or (last_row(prev) if prev.exists() else None)
                seen = _ids_at(source, int(after[4])) if after else set()
                complete, t_last = await self._trades_forward(
                    unified, day, after, seen, out, result
                )
        rows = rows_in(partial)
        result.rows = rows
        if rows == 0:
            partial.unlink()
            return Day(symbol, day, "missing" if complete else "partial", source="ccxt")
        if complete:
            if kind == "trades" and self.spec.trades == "backward":
                _sort_into(partial, final, header)
            else:
                partial.replace(final)
        else:
            result.status, result.path, result.until_ms = "partial", partial, t_last
        return result

    async def _klines(
        self, market: str, day: date, interval: str, after: list[str] | None, out: Any, result: Day
    ) -> tuple[bool, int | None]:
        step = INTERVAL_MS[interval]
        day0 = day_ms(day)
        day_end = day0 + DAY_MS
        expected = int(after[0]) + step if after else day0
        t_last = int(after[0]) if after else None
        cursor = expected
        while cursor < min(day_end, self.now_ms()):
            now = self.now_ms()
            until = {"until": cursor + step * self.page - 1} if self.spec.klines_until else {}
            page = await self._call("fetch_ohlcv", market, interval, cursor, self.page, until)
            closed = [k for k in page if cursor <= int(k[0]) < day_end and int(k[0]) + step <= now]
            closed.sort(key=lambda k: int(k[0]))
            for k in closed:
                if int(k[0]) > expected:
                    hole(result, interval, expected, int(k[0]), step)
                expected = int(k[0]) + step
                t_last = int(k[0])
            out.write("".join(_kline_row(k, step) for k in closed))
            out.flush()
            cursor = expected if closed else cursor + step * self.page
        complete = self.now_ms() >= day_end
        boundary = day_end if complete else min(day_end, self.now_ms() // step * step)
        if t_last is not None and expected < boundary:
            hole(result, interval, expected, boundary, step)
        return complete, t_last

    async def _trades_forward(
        self,
        market: str,
        day: date,
        after: list[str] | None,
        seen: set[str],
        out: Any,
        result: Day,
    ) -> tuple[bool, int | None]:
        """From the day's start (or after the last row written) by ``since``;
        ``seen``: ids already written at the last row's millisecond."""
        day0 = day_ms(day)
        day_end = day0 + DAY_MS
        cursor = int(after[4]) if after else day0
        t_last = cursor if after else None
        last_id = int(after[0]) if after and after[0].isdigit() else None
        seen_at_cursor = seen
        limit = self.page
        while True:
            ns = {"since": str(cursor * 1_000_000 - 1)} if self.spec.since_ns else {}
            page = await self._call("fetch_trades", market, cursor, limit, ns)
            fresh = [
                t for t in page
                if int(t["timestamp"]) >= cursor
                and not (int(t["timestamp"]) == cursor and str(t["id"]) in seen_at_cursor)
            ]  # fmt: skip
            if page and not fresh:
                # A whole page at one millisecond, all written: ask for more at
                # once; past twice the page, step over it (the id check reports
                # what that skips, where ids count).
                if limit < 2 * self.page:
                    limit = 2 * self.page
                else:
                    cursor, limit = cursor + 1, self.page
                continue
            limit = self.page
            fresh.sort(key=lambda t: (int(t["timestamp"]), int(t["id"])))
            take = [t for t in fresh if day0 <= int(t["timestamp"]) < day_end]
            last_id = self._check_ids(take, last_id, result)
            out.write("".join(_trade_row(t) for t in take))
            out.flush()
            if take:
                t_last = int(take[-1]["timestamp"])
            if len(take) < len(fresh):
                return True, t_last
            if not fresh:
                # Some venues answer a time window from ``since`` (ccxt asks
                # Binance for an hour): an empty one is not the end yet.
                cursor += HOUR_MS
                seen_at_cursor = set()
                if cursor >= min(day_end, self.now_ms()):
                    return self.now_ms() >= day_end, t_last
                continue
            newest = int(fresh[-1]["timestamp"])
            seen_at_cursor = {str(t["id"]) for t in fresh if int(t["timestamp"]) == newest} | (
                seen_at_cursor if newest == cursor else set()
            )
            cursor = newest

    async def _trades_backward(
        self, market: str, day: date, after: list[str] | None, out: Any, result: Day
    ) -> tuple[bool, int | None]:
        """From the day's end back to its start; the partial file holds rows
        newest first, and a rerun continues below its last (oldest) id."""
        day0 = day_ms(day)
        day_end = day0 + DAY_MS
        if self.now_ms() < day_end:
            raise HistoryError(
                f"{self.venue} trades page backwards from a day's end: "
                f"{day} is not over yet; download finished days"
            )
        params = dict(self.spec.trades_params)
        cursor = {"type": "1", "after": after[0]} if after else {"type": "2", "after": str(day_end)}
        oldest = int(after[0]) if after else None
        t_last = int(after[4]) if after else None
        while True:
            page = await self._call("fetch_trades", market, None, self.page, {**params, **cursor})
            page.sort(key=lambda t: int(t["id"]), reverse=True)
            take = [t for t in page if int(t["timestamp"]) >= day0]
            for t in take:
                tid = int(t["id"])
                if self.spec.sequential_ids and oldest is not None and tid != oldest - 1:
                    _lost(result, tid + 1, oldest - 1)
                oldest = tid
            out.write("".join(_trade_row(t) for t in take))
            out.flush()
            if take and t_last is None:
                t_last = int(take[0]["timestamp"])
            if len(take) < len(page) or len(page) < self.page or not page:
                return True, t_last
            cursor = {"type": "1", "after": str(oldest)}

    def _check_ids(
        self, take: list[dict[str, Any]], last_id: int | None, result: Day
    ) -> int | None:
        if not self.spec.sequential_ids:
            return last_id
        for t in take:
            tid = int(t["id"])
            if last_id is not None and tid != last_id + 1:
                _lost(result, last_id + 1, tid - 1)
            last_id = tid
        return last_id


def _lost(result: Day, first: int, last: int) -> None:
    result.lost.append(f"trade ids {first}-{last} not sent ({last - first + 1} rows)")


def _ids_at(path: Path, ms: int) -> set[str]:
    """Ids of the trades a file holds at millisecond ``ms``."""
    out = set()
    with path.open() as f:
        for line in f:
            cols = line.split(",")
            if len(cols) > 4 and cols[4] == str(ms):
                out.add(cols[0])
    return out


def _sort_into(partial: Path, final: Path, header: str) -> None:
    lines = partial.read_text().splitlines()[1:]
    lines.sort(key=lambda line: int(line.split(",", 1)[0]))
    tmp = final.with_name(final.name + ".tmp")
    tmp.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    tmp.replace(final)
    partial.unlink()


def _transport(exc: BaseException) -> bool:
    """A ccxt error caused by the connection (a body cut short), not the venue."""
    import aiohttp

    return isinstance(exc.__cause__, (aiohttp.ClientError, OSError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
