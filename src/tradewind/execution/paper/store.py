"""The paper exchange's state on the bus, saved with each execution commit.

A paper exchange is a simulator, but its resting and in-flight orders are
promises made to risk (ACCEPTED orders that will fill later): losing them on
a restart would leave risk with open orders that never fill, and fills that
differ from an undisturbed run. So the service saves the state in the same
atomic bus commit as the acks and the events of each batch, and restores it
on start; the bus then redelivers exactly the messages whose effects were not
committed, and the run continues as if it had never stopped.

What is saved, per replica (``paper:<consumer>:…``, each replica has its own
market group and its own orders):

- ``core``: the live orders, the resting books (in their matching order), the
  in-flight heap, the reduce-only ledger, the finished ids and the counters;
  written when the order side changed (``PaperExchange.version``);
- ``m:<exchange>:<symbol>``: the market history's bounds and its open
  checkpoint interval (the book at its start and the events since);
- ``c:<exchange>:<symbol>:<slot>``: each completed checkpoint interval,
  written once, in a ring of ``history_max_events / checkpoint_every + 3``
  slots that eviction frees before they are reused, so the keys are bounded.

- ``b:<exchange>:<symbol>`` and ``bc:<exchange>:<symbol>:<slot>``: for a
  symbol matched on its bars (``bar_fills``), how many bars it has kept and
  those bars in chunks of ``BAR_CHUNK``, a ring of ``KEEP_BARS / BAR_CHUNK + 2``
  slots. Only the chunk that took new bars is rewritten, so a commit carries
  at most one chunk a symbol; without them a restarted exchange would fill
  the next market order on the wrong bar and drop late orders' matches.

Saving the history too is what makes a late order after a restart match
exactly as it would have: it is matched against the market as of its arrival.
"""

from __future__ import annotations

import heapq
from decimal import Decimal

import msgspec

from tradewind.bus import Bus
from tradewind.events import Bar, CancelRequest, OrderRequest
from tradewind.execution.paper.bar_fills import KEEP_BARS
from tradewind.execution.paper.book import HistoryChunk, HistoryMeta, MarketHistory
from tradewind.execution.paper.exchange import InFlight, PaperExchange, PaperOrder
from tradewind.execution.state import OrderState

Key = tuple[str, str]


class _Order(msgspec.Struct, array_like=True):
    request: OrderRequest
    state: OrderState
    arrival: int
    qty: Decimal
    queue_ahead: Decimal
    fills: int


class _Flight(msgspec.Struct, array_like=True):
    exchange: str
    symbol: str
    arrival: int
    seq: int
    coid: str | None
    cancel: CancelRequest | None


class _Core(msgspec.Struct, array_like=True):
    orders: list[_Order]
    resting: list[tuple[str, str, list[str]]]
    flights: list[_Flight]
    ledger: list[tuple[str, str, list[tuple[int, Decimal]]]]
    done: list[tuple[str, float]]
    markets: list[tuple[str, str]]
    seq: int
    late_orders: int
    beyond_history: int
    bar_symbols: list[tuple[str, str]] = []


BAR_CHUNK = 256


class _BarChunk(msgspec.Struct, array_like=True):
    pos: int
    """The position of the chunk's first bar: a slot from an older turn of
    the ring holds another position and is not taken."""
    bars: list[Bar]


_enc = msgspec.msgpack.Encoder(decimal_format="string")
_bar_chunk = msgspec.msgpack.Decoder(_BarChunk)
_bar_count = msgspec.msgpack.Decoder(int)
_core = msgspec.msgpack.Decoder(_Core)
_meta = msgspec.msgpack.Decoder(HistoryMeta)
_chunk = msgspec.msgpack.Decoder(HistoryChunk)


class PaperStore:
    def __init__(self, paper: PaperExchange, prefix: str) -> None:
        self.paper = paper
        self.prefix = prefix
        s = paper.settings
        self.slots = s.history_max_events // s.checkpoint_every + 3
        self._version = -1
        self._markets = -1
        self._ends: dict[Key, int] = {}
        self._chunks: dict[Key, set[int]] = {}
        self._pending: tuple[int, int, dict[Key, int], dict[Key, set[int]]] | None = None
        self.bar_slots = KEEP_BARS // BAR_CHUNK + 2
        self._bar_counts: dict[Key, int] = {}
        self._bar_pending: dict[Key, int] = {}

    # --- keys ------------------------------------------------------------------
    def core_key(self) -> str:
        return f"{self.prefix}:core"

    def meta_key(self, key: Key) -> str:
        return f"{self.prefix}:m:{key[0]}:{key[1]}"

    def chunk_key(self, key: Key, pos: int) -> str:
        slot = (pos // self.paper.settings.checkpoint_every) % self.slots
        return f"{self.prefix}:c:{key[0]}:{key[1]}:{slot}"

    def bar_count_key(self, key: Key) -> str:
        return f"{self.prefix}:b:{key[0]}:{key[1]}"

    def bar_chunk_key(self, key: Key, pos: int) -> str:
        slot = (pos // BAR_CHUNK) % self.bar_slots
        return f"{self.prefix}:bc:{key[0]}:{key[1]}:{slot}"

    # --- saving ------------------------------------------------------------------
    def changes(self) -> dict[str, bytes]:
        """The state entries that changed since the last ``saved()``; pass them
        to the commit, then call ``saved()`` once it succeeded."""
        p = self.paper
        out: dict[str, bytes] = {}
        ends = dict(self._ends)
        chunks = {k: set(v) for k, v in self._chunks.items()}
        for key, m in p.markets.items():
            if ends.get(key) == m.end:
                continue
            sealed = m.sealed()
            have = chunks.setdefault(key, set()) & set(sealed)
            for pos in sealed:
                if pos not in have:
                    out[self.chunk_key(key, pos)] = _enc.encode(m.chunk_at(pos))
                    have.add(pos)
            chunks[key] = have
            out[self.meta_key(key)] = _enc.encode(m.meta())
            ends[key] = m.end
        if (
            p.version != self._version
            or len(p.markets) != self._markets
            or len(p.bar_fills.count) != len(self._bar_counts)
        ):
            out[self.core_key()] = _enc.encode(self._core())
        self._pending = (p.version, len(p.markets), ends, chunks)
        self._bar_pending = self._bar_changes(out)
        return out

    def _bar_changes(self, out: dict[str, bytes]) -> dict[Key, int]:
        bf = self.paper.bar_fills
        counts = dict(self._bar_counts)
        for key, count in bf.count.items():
            done = counts.get(key, 0)
            if done == count:
                continue
            hist = bf.bars[key]
            first = count - len(hist)
            for start in range(max(done, first) // BAR_CHUNK * BAR_CHUNK, count, BAR_CHUNK):
                lo = max(start, first)
                bars = [hist[i - first] for i in range(lo, min(start + BAR_CHUNK, count))]
                out[self.bar_chunk_key(key, start)] = _enc.encode(_BarChunk(lo, bars))
            out[self.bar_count_key(key)] = _enc.encode(count)
            counts[key] = count
        return counts

    def saved(self) -> None:
        if self._pending is not None:
            self._version, self._markets, self._ends, self._chunks = self._pending
            self._pending = None
            self._bar_counts = self._bar_pending

    def _core(self) -> _Core:
        p = self.paper
        return _Core(
            orders=[
                _Order(o.request, o.state, o.arrival, o.qty, o.queue_ahead, o.fills)
                for o in p.orders.values()
            ],
            resting=[(k[0], k[1], list(book)) for k, book in p.resting.items()],
            flights=[
                _Flight(
                    k[0],
                    k[1],
                    f.arrival,
                    f.seq,
                    None if f.order is None else f.order.request.client_order_id,
                    f.cancel,
                )
                for k, flights in p.in_flight.items()
                for f in flights
            ],
            ledger=[(k[0], k[1], list(v)) for k, v in p.ledger.items()],
            done=list(p.done.items()),
            markets=list(p.markets),
            seq=p._seq,
            late_orders=p.late_orders,
            beyond_history=p.beyond_history,
            bar_symbols=list(p.bar_fills.count),
        )

    # --- restoring ---------------------------------------------------------------
    async def restore(self, bus: Bus) -> bool:
        """Load the saved state into ``self.paper`` (a fresh one); False if none."""
        raw = await bus.get_state(self.core_key())
        if raw is None:
            return False
        core = _core.decode(raw)
        p = self.paper
        s = p.settings
        for exchange, symbol in core.markets:
            key = (exchange, symbol)
            m = p.markets[key] = MarketHistory(
                int(s.history_s * 1e9), s.history_max_events, s.checkpoint_every
            )
            mraw = await bus.get_state(self.meta_key(key))
            if mraw is None:
                continue
            meta = _meta.decode(mraw)
            got: list[HistoryChunk | None] = []
            for pos in meta.chunks:
                craw = await bus.get_state(self.chunk_key(key, pos))
                got.append(None if craw is None else _chunk.decode(craw))
            m.restore(meta, got)
            self._ends[key] = m.end
            self._chunks[key] = {c.pos for c in got if c is not None}
        for o in core.orders:
            coid = o.request.client_order_id
            p.orders[coid] = PaperOrder(
                o.request, o.state, o.arrival, o.qty, o.queue_ahead, o.fills
            )
        for exchange, symbol, ids in core.resting:
            p.resting[(exchange, symbol)] = {c: p.orders[c] for c in ids if c in p.orders}
        for f in core.flights:
            order = None if f.coid is None else p.orders.get(f.coid)
            heap = p.in_flight.setdefault((f.exchange, f.symbol), [])
            heap.append(InFlight(f.arrival, f.seq, order, f.cancel))
        for heap in p.in_flight.values():
            heapq.heapify(heap)
        p.ledger = {(e, sym): list(v) for e, sym, v in core.ledger}
        p.done = dict(core.done)
        p._seq = core.seq
        p.late_orders = core.late_orders
        p.beyond_history = core.beyond_history
        for exchange, symbol in core.bar_symbols:
            await self._restore_bars(bus, (exchange, symbol))
        self._version = p.version
        self._markets = len(p.markets)
        return True

    async def _restore_bars(self, bus: Bus, key: Key) -> None:
        raw = await bus.get_state(self.bar_count_key(key))
        if raw is None:
            return
        count = _bar_count.decode(raw)
        first = max(count - KEEP_BARS, 0)
        bars: list[Bar] = []
        for start in range(first // BAR_CHUNK * BAR_CHUNK, count, BAR_CHUNK):
            craw = await bus.get_state(self.bar_chunk_key(key, start))
            if craw is None:
                continue
            chunk = _bar_chunk.decode(craw)
            if chunk.pos // BAR_CHUNK * BAR_CHUNK != start:
                continue
            bars += [b for i, b in enumerate(chunk.bars, chunk.pos) if first <= i < count]
        self.paper.bar_fills.restore(key, count, bars)
        self._bar_counts[key] = count
