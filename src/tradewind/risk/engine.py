"""Pre-trade risk: every signal gets a verdict with a reason code.

Limits are checked against the worst case: the filled position plus every open
order on the same side, so that the verdict does not depend on whether a fill
has arrived yet (which keeps replays deterministic and concurrency safe). Rate
windows, staleness, cooldowns and trading days run on event time for the same
reason. An order that reduces a position is exempt from the limits that bound
exposure, because it lowers it; HALTED still refuses it (only the kill switch
closes positions then).

The engine is pure bookkeeping: what it wants sent (cancels, closing orders,
their decisions, records of state changes) collects in ``outbox`` for the
service to publish in the same commit as the acks.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradewind.config import RiskSettings
from tradewind.events import (
    CancelRequest,
    Control,
    Event,
    Fill,
    OrderRequest,
    OrderType,
    OrderUpdate,
    RiskDecision,
    Side,
    Signal,
    TradingState,
    client_order_id,
)
from tradewind.instruments import InstrumentRegistry
from tradewind.portfolio import Portfolio, PositionState
from tradewind.risk import rules
from tradewind.risk.account import Cooldowns, LossGuard
from tradewind.risk.marks import Key, Marks
from tradewind.risk.orders import OpenOrder, OpenOrders
from tradewind.risk.reasons import Reason

__all__ = ["APPLIED", "Reason", "RiskEngine"]

_NS = 1_000_000_000
_SEEN_MAX = 200_000
_ZERO = Decimal(0)
APPLIED = "applied"
"""Command of the control record risk writes for every state change it made."""

Signer = Callable[[str, dict[str, str], int], str]
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class RiskEngine:
    def __init__(
        self,
        settings: RiskSettings,
        instruments: InstrumentRegistry,
        signer: Signer | None = None,
    ) -> None:
        self.settings = settings
        self.instruments = instruments
        self.signer = signer
        self.state = TradingState(settings.initial_state)
        self.tripped_by = "" if self.state is TradingState.ACTIVE else "initial_state"
        self.flattening = False
        self.portfolio = Portfolio(self.instruments, self.settings.account_currency)
        self.orders = OpenOrders()
        self.marks = Marks(instruments, settings.account_currency, settings.currency_aliases)
        self.loss = LossGuard(settings.max_daily_loss, settings.max_drawdown)
        self.cooldowns = Cooldowns(settings)
        self.now_ns = 0
        self.control_seq = 0
        self.flatten_seq = 0
        self.replaying = False
        """While rebuilding from history: no trips and nothing to send."""
        self.outbox: list[Event] = []
        self.trips: list[str] = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._fills: OrderedDict[str, None] = OrderedDict()
        self._issued: OrderedDict[str, None] = OrderedDict()
        """Client order ids risk approved or created, newest last: a fill for
        any other order did not come from an order of this account."""
        self._approvals: deque[int] = deque()

    @property
    def open_orders(self) -> dict[str, OpenOrder]:
        return self.orders.orders

    # --- signals ---------------------------------------------------------------

    def evaluate(self, sig: Signal) -> tuple[RiskDecision, OrderRequest | None]:
        self._advance(sig.ts_event)
        coid = client_order_id(sig.id)
        inst = self.instruments.get(sig.exchange, sig.symbol)
        qty = rules.rounded_qty(inst, sig.quantity)
        limit = rules.rounded_limit(inst, sig) if sig.order_type is OrderType.LIMIT else None
        reason, detail, price = self._check(sig, qty, limit)
        approved = reason is Reason.OK
        decision = RiskDecision(
            id=f"d:{sig.id}",
            ts_event=sig.ts_event,
            signal_id=sig.id,
            client_order_id=coid,
            strategy=sig.strategy,
            exchange=sig.exchange,
            symbol=sig.symbol,
            side=sig.side,
            quantity=qty if qty is not None else _ZERO,
            approved=approved,
            reason=reason.value,
            detail=detail,
            trading_state=self.state,
            ts_recv=sig.ts_recv,
        )
        if sig.id not in self._seen:
            _remember(self._seen, sig.id)
        if not approved or qty is None or price is None:
            return decision, None
        order = OrderRequest(
            id=coid,
            ts_event=sig.ts_event,
            client_order_id=coid,
            signal_id=sig.id,
            strategy=sig.strategy,
            exchange=sig.exchange,
            symbol=sig.symbol,
            side=sig.side,
            order_type=sig.order_type,
            quantity=qty,
            price=limit,
            time_in_force=sig.time_in_force,
            reduce_only=sig.reduce_only,
            ref_bid=sig.ref_bid,
            ref_ask=sig.ref_ask,
            ref_last=sig.ref_last,
            ts_recv=sig.ts_recv,
        )
        self.on_order(order, price)
        self._approvals.append(sig.ts_event)
        return decision, order

    def _check(
        self, sig: Signal, qty: Decimal | None, limit: Decimal | None
    ) -> tuple[Reason, str, Decimal | None]:
        s = self.settings
        key = (sig.exchange, sig.symbol)
        if sig.id in self._seen:
            return Reason.DUPLICATE_SIGNAL, f"signal {sig.id} was already decided", None
        if qty is None:
            return Reason.INVALID_QUANTITY, f"quantity {sig.quantity} rounds to zero", None
        if self.state is TradingState.HALTED:
            return Reason.TRADING_HALTED, "trading is halted", None
        reduces = self.reduces(key, sig.side, qty)
        if self.state is TradingState.REDUCING and not reduces:
            return Reason.REDUCING_ONLY, "only position-reducing orders pass while reducing", None
        if sig.order_type is OrderType.LIMIT and limit is None:
            return Reason.INVALID_PRICE, f"limit price {sig.limit_price} is not a price", None
        inst = self.instruments.get(*key)
        bad = rules.quantity_rules(inst, qty)
        if bad is not None:
            return *bad, None
        price = rules.reference_price(sig, limit)
        if price is None:
            return Reason.NO_REFERENCE_PRICE, "no bid, ask, last or limit to value the order", None
        notional = inst.notional(qty, price)
        if notional < inst.min_notional:
            return (
                Reason.BELOW_MIN_NOTIONAL,
                f"notional {notional} < minimum {inst.min_notional}",
                None,
            )
        if limit is not None:
            bad = rules.fat_finger(sig, limit, s.fat_finger_pct)
            if bad is not None:
                return *bad, None
        if not reduces:
            bad = self._exposure_checks(sig, key, qty, price, notional)
            if bad is not None:
                return *bad, None
        self._expire(sig.ts_event)
        last_second = sum(1 for t in self._approvals if t > sig.ts_event - _NS)
        if last_second >= s.max_orders_per_second:
            return Reason.RATE_LIMIT_SECOND, f"{last_second} orders in the last second", None
        if len(self._approvals) >= s.max_orders_per_minute:
            n = len(self._approvals)
            return Reason.RATE_LIMIT_MINUTE, f"{n} orders in the last minute", None
        return Reason.OK, "", price

    def _exposure_checks(
        self, sig: Signal, key: Key, qty: Decimal, price: Decimal, notional: Decimal
    ) -> tuple[Reason, str] | None:
        s = self.settings
        fresh = self.marks.fresh.get(key)
        if fresh is None:
            return Reason.STALE_MARKET_DATA, "no market data seen for the symbol"
        age_s = (sig.ts_event - fresh) / _NS
        if age_s > s.stale_after_s:
            return Reason.STALE_MARKET_DATA, f"market data {age_s:.1f}s old > {s.stale_after_s}s"
        until = self.cooldowns.active(key, sig.ts_event)
        if until is not None:
            return Reason.COOLDOWN, f"symbol cooling down for {(until - sig.ts_event) / _NS:.0f}s"
        fx = self.marks.fx(sig.exchange, self.marks.quote_of(key))
        if fx is None:
            return Reason.NO_CONVERSION_RATE, f"no rate from {self.marks.quote_of(key)} to account"
        value = notional * fx
        if value > s.max_order_notional:
            return Reason.MAX_ORDER_NOTIONAL, f"notional {value:.2f} > {s.max_order_notional}"
        long_w, short_w = self.worst_position(key)
        if sig.side is Side.BUY:
            long_w += qty
        else:
            short_w -= qty
        inst = self.instruments.get(*key)
        worst = rules.position_size(inst, max(abs(long_w), abs(short_w)), price)
        cap = self.max_position(key)
        if worst > cap:
            return Reason.MAX_POSITION, rules.position_detail(
                inst, max(abs(long_w), abs(short_w)), price, worst, cap
            )
        exp = self.worst_exposure((key, sig.side, qty, price))
        if exp is None:
            return Reason.NO_CONVERSION_RATE, "a position cannot be valued in the account currency"
        gross, net = exp
        if gross > s.max_gross_exposure:
            return Reason.MAX_GROSS_EXPOSURE, f"gross {gross:.2f} > {s.max_gross_exposure}"
        if net > s.max_net_exposure:
            return Reason.MAX_NET_EXPOSURE, f"net {net:.2f} > {s.max_net_exposure}"
        if len(self.orders) >= s.max_open_orders:
            return Reason.MAX_OPEN_ORDERS, f"{len(self.orders)} open orders"
        return None

    def max_position(self, key: Key) -> Decimal:
        """In the instrument's base coin (see ``rules.position_size``)."""
        s = self.settings
        return s.max_position_by_symbol.get(f"{key[0]}:{key[1]}", s.max_position)

    def reduces(self, key: Key, side: Side, qty: Decimal) -> bool:
        """True when the order, with every open order on its side, can only bring
        the position closer to zero."""
        pos = self.portfolio.position(*key).qty if key in self.portfolio.positions else _ZERO
        buys, sells = self.orders.pending(*key)
        if pos > 0 and side is Side.SELL:
            return qty + sells <= pos
        if pos < 0 and side is Side.BUY:
            return qty + buys <= -pos
        return False

    def worst_position(self, key: Key) -> tuple[Decimal, Decimal]:
        """The longest and shortest the position can become if every open order fills."""
        p = self.portfolio.positions.get(key)
        pos = p.qty if p is not None else _ZERO
        buys, sells = self.orders.pending(*key)
        return pos + buys, pos - sells

    def worst_exposure(
        self, extra: tuple[Key, Side, Decimal, Decimal] | None = None
    ) -> tuple[Decimal, Decimal] | None:
        """Gross and absolute net exposure in the account currency if every open
        order (and ``extra``) fills; None when a symbol cannot be converted."""
        keys = set(self.portfolio.positions) | self.orders.symbols()
        if extra is not None:
            keys.add(extra[0])
        gross = hi = lo = _ZERO
        for key in sorted(keys):
            long_w, short_w = self.worst_position(key)
            px = self._value_price(key)
            if extra is not None and extra[0] == key:
                _, side, qty, px = extra
                if side is Side.BUY:
                    long_w += qty
                else:
                    short_w -= qty
            if long_w == 0 and short_w == 0:
                continue
            fx = self.marks.fx(key[0], self.marks.quote_of(key))
            if fx is None or px is None:
                return None
            inst = self.instruments.get(*key)
            unit = (inst.contract_size if inst.inverse else px * inst.contract_size) * fx
            gross += max(abs(long_w), abs(short_w)) * unit
            hi += long_w * unit
            lo += short_w * unit
        return gross, max(abs(hi), abs(lo))

    def _value_price(self, key: Key) -> Decimal | None:
        m = self.marks.price(key)
        if m is not None:
            return m
        p = self.portfolio.positions.get(key)
        if p is not None and p.avg_price > 0:
            return p.avg_price
        prices = [o.price for o in self.orders.orders.values() if (o.exchange, o.symbol) == key]
        return max(prices) if prices else None

    def _expire(self, now: int) -> None:
        horizon = now - 60 * _NS
        while self._approvals and self._approvals[0] <= horizon:
            self._approvals.popleft()

    # --- executions and market -----------------------------------------------------

    def on_order(self, o: OrderRequest, price: Decimal) -> None:
        """An approved order is open from now on (also when rebuilt from history)."""
        _remember(self._issued, o.client_order_id)
        self.orders.add(
            o.client_order_id,
            OpenOrder(o.exchange, o.symbol, o.side, o.quantity, o.reduce_only, price),
        )

    def knows_order(self, client_order_id: str) -> bool:
        return client_order_id in self._issued or client_order_id in self.orders.orders

    def on_fill(self, fill: Fill) -> PositionState:
        key = (fill.exchange, fill.symbol)
        if fill.id in self._fills:
            return self.portfolio.position(*key)
        _remember(self._fills, fill.id)
        self._advance(fill.ts_event)
        pos = self.portfolio.position(*key)
        before_qty, before_pnl = pos.qty, pos.realized_pnl
        self.portfolio.apply(fill)
        self.orders.on_fill(fill)
        if before_qty != 0 and (before_qty > 0) != (fill.side is Side.BUY):
            pnl = self.in_account(key, pos.realized_pnl - before_pnl - fill.fee, fill.price)
            self.cooldowns.on_close(
                key,
                pnl if pnl is not None else pos.realized_pnl - before_pnl - fill.fee,
                fill.ts_event,
            )
        self._check_loss()
        if (
            self.flattening
            and not self.replaying
            and self.state is TradingState.HALTED
            and pos.qty != 0
            and key not in self.orders.symbols()
        ):
            self._flatten_one(pos, f"reflatten:{self.now_ns}")
        return pos

    def on_order_update(self, u: OrderUpdate) -> None:
        self.orders.on_update(u)

    def on_market(self, exchange: str, symbol: str, ts: int, price: float | None) -> None:
        """Any market event refreshes the symbol; a trade price also moves the mark."""
        key = (exchange, symbol)
        self._advance(ts)
        if price is None:
            self.marks.seen(key, ts)
            return
        mark = self.marks.trade(key, ts, price)
        if mark is not None:
            self.portfolio.mark(exchange, symbol, mark)
            # Equity moves with marks only while something is open.
            if any(p.qty for p in self.portfolio.positions.values()):
                self._check_loss()

    # --- account and kill switch ----------------------------------------------------

    def in_account(self, key: Key, amount: Decimal, price: Decimal | None) -> Decimal | None:
        """``amount`` of the symbol's settlement currency in the account currency.

        An inverse contract settles in its coin, worth ``price`` of its quote
        (its own price: the coin is what the contract is quoted against); a
        linear one in its quote. None when a rate is missing."""
        fx = self.marks.fx(key[0], self.marks.quote_of(key))
        if fx is None:
            return None
        if self.instruments.get(*key).inverse:
            if price is None:
                return None
            return amount * price * fx
        return amount * fx

    def equity(self) -> Decimal:
        """Account PnL: realized - fees + unrealized, in the account currency
        (an inverse position's coin PnL valued at its mark)."""
        total = _ZERO
        for key, p in self.portfolio.positions.items():
            v = self.in_account(key, p.realized_pnl - p.fees + p.unrealized_pnl, p.mark)
            if v is not None:
                total += v
        return total

    def _advance(self, ts: int) -> None:
        if ts > self.now_ns:
            self.now_ns = ts
        if self.loss.day is None or ts // 86_400_000_000_000 > self.loss.day:
            self.loss.roll(ts, self.equity())

    def _check_loss(self) -> None:
        trigger = self.loss.update(self.equity())
        if trigger is None or self.replaying:
            return
        target = TradingState(self.settings.loss_breach_state)
        if _SEVERITY[self.state] >= _SEVERITY[target]:
            return
        source = f"trip:{trigger}:{self.now_ns}"
        self._set_state(target, trigger)
        self.cancel_all(source)
        if self.settings.flatten_on_breach and target is TradingState.HALTED:
            self.flattening = True
            self.flatten(source)
        self.trips.append(trigger)
        self._record(source, "trip")

    def halt(self, source: str, flatten: bool) -> tuple[int, int]:
        """The kill switch: cancel every open order, optionally close every
        position, and refuse everything new; returns (cancels, closing orders)."""
        self._set_state(TradingState.HALTED, "operator")
        cancels = self.cancel_all(source)
        closes = 0
        if flatten:
            self.flattening = True
            closes = self.flatten(source)
        self.trips.append("operator")
        self._record(source, "halt")
        return cancels, closes

    def resume(self, source: str) -> None:
        """Back to ACTIVE with a fresh loss budget from the current equity."""
        self._set_state(TradingState.ACTIVE, "")
        self.flattening = False
        self.loss.rebase(self.equity())
        self._record(source, "resume")

    def _set_state(self, state: TradingState, why: str) -> None:
        self.state = state
        self.tripped_by = why

    def cancel_all(self, source: str) -> int:
        n = 0
        for coid, o in sorted(self.orders.orders.items()):
            self.outbox.append(
                CancelRequest(
                    id=f"cancel:{source}:{coid}",
                    ts_event=self.now_ns,
                    client_order_id=coid,
                    exchange=o.exchange,
                    symbol=o.symbol,
                    reason=f"kill switch ({source})",
                )
            )
            n += 1
        return n

    def flatten(self, source: str) -> int:
        n = 0
        for _key, p in sorted(self.portfolio.positions.items()):
            if p.qty != 0:
                self._flatten_one(p, source)
                n += 1
        return n

    def _flatten_one(self, p: PositionState, source: str) -> None:
        self.flatten_seq += 1
        sid = f"flatten:{source}:{p.exchange}:{p.symbol}:{self.flatten_seq}"
        coid = client_order_id(sid)
        side = Side.SELL if p.qty > 0 else Side.BUY
        qty = abs(p.qty)
        px = self.marks.price((p.exchange, p.symbol)) or p.avg_price
        ref = float(px)
        order = OrderRequest(
            id=coid,
            ts_event=self.now_ns,
            client_order_id=coid,
            signal_id=sid,
            strategy="kill_switch",
            exchange=p.exchange,
            symbol=p.symbol,
            side=side,
            order_type=OrderType.MARKET,
            quantity=qty,
            reduce_only=True,
            ref_bid=ref,
            ref_ask=ref,
            ref_last=ref,
        )
        self.outbox.append(
            RiskDecision(
                id=f"d:{sid}",
                ts_event=self.now_ns,
                signal_id=sid,
                client_order_id=coid,
                strategy="kill_switch",
                exchange=p.exchange,
                symbol=p.symbol,
                side=side,
                quantity=qty,
                approved=True,
                reason=Reason.FLATTEN.value,
                detail=f"close {p.qty} ({source})",
                trading_state=self.state,
            )
        )
        self.outbox.append(order)
        self.on_order(order, px)

    def _record(self, source: str, action: str) -> None:
        """A signed record of the state change, so a rebuild from the store can
        replay exactly the changes risk made and no forged ones."""
        self.control_seq += 1
        args = {
            "action": action,
            "source": source,
            "seq": str(self.control_seq),
            "state": self.state.value,
            "tripped_by": self.tripped_by,
            "flattening": "1" if self.flattening else "0",
            "equity": str(self.equity()),
        }
        sig = self.signer(f"{APPLIED}:{source}", args, self.now_ns) if self.signer else ""
        self.outbox.append(
            Control(
                id=f"{APPLIED}:{source}",
                ts_event=self.now_ns,
                command=APPLIED,
                args={**args, "signature": sig},
                issued_by="risk",
                signature=sig,
            )
        )

    def apply_record(self, args: dict[str, str]) -> None:
        """Replay a recorded state change (rebuild)."""
        self.state = TradingState(args["state"])
        self.tripped_by = args.get("tripped_by", "")
        self.flattening = args.get("flattening") == "1"
        self.control_seq = max(self.control_seq, int(args.get("seq", "0")))
        if args.get("action") == "resume":
            self.loss.rebase(Decimal(args["equity"]))

    def drain(self) -> list[Event]:
        out, self.outbox = self.outbox, []
        return out

    # --- reporting and persistence ------------------------------------------------

    def utilisation(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Every limit: (used, limit)."""
        s = self.settings
        keys = set(self.portfolio.positions) | self.orders.symbols()
        sizes = []
        for k in sorted(keys):
            px = self._value_price(k)
            a, b = self.worst_position(k)
            inst = self.instruments.get(*k)
            if px is None and inst.inverse:
                continue
            size = rules.position_size(inst, max(abs(a), abs(b)), px or _ZERO)
            sizes.append(size / self.max_position(k) * s.max_position)
        pos = max(sizes, default=_ZERO)
        exp = self.worst_exposure() or (_ZERO, _ZERO)
        eq = self.equity()
        self._expire(self.now_ns)
        last_second = sum(1 for t in self._approvals if t > self.now_ns - _NS)
        return {
            "position": (pos, s.max_position),
            "gross_exposure": (exp[0], s.max_gross_exposure),
            "net_exposure": (exp[1], s.max_net_exposure),
            "open_orders": (Decimal(len(self.orders)), Decimal(s.max_open_orders)),
            "orders_per_second": (Decimal(last_second), Decimal(s.max_orders_per_second)),
            "orders_per_minute": (Decimal(len(self._approvals)), Decimal(s.max_orders_per_minute)),
            "daily_loss": (self.loss.daily_loss(eq), s.max_daily_loss),
            "drawdown": (self.loss.drawdown(eq), s.max_drawdown),
        }

    def account_state(self) -> dict[str, Any]:
        """What must survive a restart, in a comparable form."""
        pf = self.portfolio
        self._expire(self.now_ns)
        return {
            "state": self.state.value,
            "tripped_by": self.tripped_by,
            "flattening": self.flattening,
            "positions": {
                f"{k[0]}|{k[1]}": [str(p.qty), str(p.avg_price), str(p.realized_pnl), str(p.fees)]
                for k, p in sorted(pf.positions.items())
            },
            "open_orders": self.orders.snapshot(),
            "loss": self.loss.snapshot(),
            "cooldowns": self.cooldowns.snapshot(),
            "marks": self.marks.snapshot(),
            "approvals": list(self._approvals),
            "now_ns": self.now_ns,
        }

    MARKET_FIELDS = ("marks", "loss", "now_ns")

    def market_state(self) -> dict[str, Any]:
        """The part of ``snapshot`` that market data alone moves (``MARKET_FIELDS``).

        Saved with every batch, while the rest, which holds up to 20k remembered
        ids, is saved only when a batch touches the account: a tick's commit
        then stays a few hundred bytes however long the engine has run."""
        return {"marks": self.marks.snapshot(), "loss": self.loss.snapshot(), "now_ns": self.now_ns}

    def snapshot(self) -> dict[str, Any]:
        out = self.account_state()
        out["control_seq"] = self.control_seq
        out["flatten_seq"] = self.flatten_seq
        out["seen"] = list(self._seen)[-10_000:]
        out["fills"] = list(self._fills)[-10_000:]
        out["issued"] = list(self._issued)[-10_000:]
        return out

    def restore(self, data: dict[str, Any]) -> None:
        self.state = TradingState(data["state"])
        self.tripped_by = data.get("tripped_by", "")
        self.flattening = bool(data.get("flattening", False))
        self.portfolio = Portfolio(self.instruments, self.settings.account_currency)
        self.marks.restore(data.get("marks", {}))
        for key, (qty, avg, pnl, fees) in data["positions"].items():
            ex, sym = key.split("|", 1)
            p = self.portfolio.position(ex, sym)
            p.qty, p.avg_price, p.realized_pnl, p.fees = (
                Decimal(qty),
                Decimal(avg),
                Decimal(pnl),
                Decimal(fees),
            )
        for (ex, sym), (_ts, px) in self.marks.prices.items():
            self.portfolio.mark(ex, sym, px)
        self.orders.restore(data["open_orders"])
        if "loss" in data:
            self.loss.restore(data["loss"])
        self.cooldowns.restore(data.get("cooldowns", {}))
        self._approvals = deque(data["approvals"])
        self.now_ns = int(data.get("now_ns", 0))
        self.control_seq = int(data.get("control_seq", 0))
        self.flatten_seq = int(data.get("flatten_seq", 0))
        self._seen = OrderedDict((k, None) for k in data["seen"])
        self._fills = OrderedDict((k, None) for k in data.get("fills", []))
        issued = data.get("issued", list(self.orders.orders))
        self._issued = OrderedDict((k, None) for k in issued)

    def remember_signal(self, signal_id: str) -> None:
        _remember(self._seen, signal_id)

    def remember_approval(self, ts: int) -> None:
        self._approvals.append(ts)
        self._expire(ts)


def _remember(seen: OrderedDict[str, None], key: str) -> None:
    seen[key] = None
    if len(seen) > _SEEN_MAX:
        seen.popitem(last=False)
