"""Binance COIN-M (inverse) end to end: contracts stay contracts, value and PnL
are computed as an inverse contract's, in the coin, on recorded trades."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.test_risk_engine import reason_of, seen, signal
from tradewind.config import RiskSettings
from tradewind.events import Side, Trade
from tradewind.exchanges.formats import PARSERS
from tradewind.exchanges.instruments import load_instruments
from tradewind.portfolio import Portfolio
from tradewind.risk.engine import RiskEngine
from tradewind.risk.reasons import Reason

RECORDING = (
    Path(__file__).resolve().parents[1] / "data" / "venues" / "binance_coinm_ws_20210722.jsonl"
)
REGISTRY = load_instruments()


def _trades(symbol: str) -> list[Trade]:
    parser = PARSERS["binance-coinm"]()
    out = []
    for line in RECORDING.read_bytes().splitlines():
        out += [e for e in parser.parse(line, 0) if isinstance(e, Trade) and e.symbol == symbol]
    return out


def test_quantities_stay_contracts_on_inverse_instruments() -> None:
    (bch,) = _trades("BCHUSD_PERP")[:1]
    assert bch.exchange == "binance-coinm" and bch.qty == 3.0  # 3 contracts, not 3 BCH
    btc = REGISTRY.get("binance-coinm", "BTCUSD_PERP")
    eth = REGISTRY.get("binance-coinm", "ETHUSD_210924")
    assert btc.inverse and btc.contract_size == 100 and btc.quote == "USD"
    assert eth.inverse and eth.contract_size == 10 and eth.base == "ETH"
    # The case: 4 contracts are 400 USD, whatever BTC costs.
    assert btc.notional(Decimal(4), Decimal("32623.3")) == 400
    assert btc.coin_value(Decimal(4), Decimal("40000")) == Decimal("0.01")
    assert not REGISTRY.get("binance-usdm", "BTCUSDT").inverse


def test_inverse_pnl_in_the_coin_on_recorded_trades() -> None:
    """Buy the first three recorded ETHUSD_210924 prints (60, 70, 40 contracts
    at 1992.17, 1992.07, 1992.06), sell all 170 at the seventh (1991.49).

    By hand, with C = 10 USD a contract, a long inverse position makes
    C * (q/entry - q/exit) ETH per fill:
      600/1992.17 + 700/1992.07 + 400/1992.06
        = 0.301179116240 + 0.351393274333 + 0.200797164744 = 0.853369555317
      1700/1991.49 = 0.853632205032
    realized = 0.853369555317 - 0.853632205032 = -0.000262649716 ETH
    (prices fell: the long loses coin).
    """
    t = _trades("ETHUSD_210924")
    assert [x.price for x in t[:3]] + [t[6].price] == [1992.17, 1992.07, 1992.06, 1991.49]
    pf = Portfolio(REGISTRY)
    pos = pf.position("binance-coinm", "ETHUSD_210924")
    for x in t[:3]:
        pos.apply(Side.BUY, Decimal(repr(x.qty)), Decimal(repr(x.price)), Decimal(0))
    assert pos.qty == 170 and pos.notional == 1700  # USD, fixed
    pf.mark("binance-coinm", "ETHUSD_210924", t[6].price)
    assert pos.unrealized_pnl == pytest.approx(Decimal("-0.000262649715570"), abs=Decimal("1e-12"))
    pos.apply(Side.SELL, Decimal(170), Decimal(repr(t[6].price)), Decimal(0))
    assert pos.qty == 0
    assert pos.realized_pnl == pytest.approx(Decimal("-0.000262649715570"), abs=Decimal("1e-12"))


def test_short_inverse_gains_coin_when_the_price_falls() -> None:
    pos = Portfolio(REGISTRY).position("binance-coinm", "BTCUSD_PERP")
    pos.apply(Side.SELL, Decimal(2), Decimal(40000), Decimal(0))
    pos.apply(Side.BUY, Decimal(2), Decimal(32000), Decimal(0))
    # 2 * 100 * (1/32000 - 1/40000) = 200 * 0.00000625 = 0.00125 BTC
    assert pos.realized_pnl == Decimal("0.00125")


def test_risk_values_inverse_orders_by_their_face_value() -> None:
    e = RiskEngine(RiskSettings(max_position=Decimal(1000)), REGISTRY)
    key = ("binance-coinm", "BTCUSD_PERP")
    seen(e, key=key, price=32623.3)
    # 49 contracts = 4,900 USD (not 49 * 32,623 USD): within the 5,000 limit.
    assert reason_of(e, signal(key=key, qty="49", price=32623.3)) == Reason.OK
    assert reason_of(e, signal(key=key, qty="51", price=32623.3)) == Reason.MAX_ORDER_NOTIONAL


def test_inverse_rules_come_from_the_venue_not_the_ground_floor() -> None:
    """Without Binance's rules the lookup knows nothing of COIN-M contracts;
    fed by the venue registry it does, for listed and unlisted symbols alike."""
    from tradewind.exchanges.binance.instruments import rules
    from tradewind.instruments import InstrumentRegistry

    bare = InstrumentRegistry().get("binance-coinm", "ETHUSD_210924")
    assert not bare.inverse and bare.contract_size == 1
    fed = InstrumentRegistry(venues=[rules()])
    unlisted = fed.get("binance-coinm", "SOLUSD_PERP")
    assert unlisted.inverse and unlisted.contract_size == Decimal(10)
    assert unlisted.base == "SOL" and unlisted.quote == "USD"
    listed = fed.get("binance-coinm", "BTCUSD_PERP")
    assert listed.inverse and listed.contract_size == Decimal(100)
    assert listed.tick_size == Decimal("0.1")
    assert not fed.get("binance", "SOLUSD_PERP").inverse
