"""One spot instrument as OKX's ``GET /api/v5/public/instruments`` documents
it, for both OKX fakes (public history and private orders): ccxt's
``load_markets`` reads these fields, so the two fakes must not drift apart."""

from __future__ import annotations


def spot_instrument(
    inst: str,
    tick: str = "0.1",
    lot: str = "0.00000001",
    min_sz: str = "0.00001",
    state: str = "live",
) -> dict[str, str]:
    base, quote = inst.split("-")
    return {
        "alias": "",
        "baseCcy": base,
        "category": "1",
        "ctMult": "",
        "ctType": "",
        "ctVal": "",
        "ctValCcy": "",
        "expTime": "",
        "instFamily": "",
        "instId": inst,
        "instType": "SPOT",
        "lever": "",
        "listTime": "1606468572000",
        "lotSz": lot,
        "maxIcebergSz": "9999999999",
        "maxLmtAmt": "1000000",
        "maxLmtSz": "9999999999",
        "maxMktAmt": "1000000",
        "maxMktSz": "1000000",
        "maxStopSz": "1000000",
        "maxTriggerSz": "9999999999",
        "maxTwapSz": "9999999999",
        "minSz": min_sz,
        "optType": "",
        "quoteCcy": quote,
        "settleCcy": "",
        "state": state,
        "stk": "",
        "tickSz": tick,
        "uly": "",
    }
