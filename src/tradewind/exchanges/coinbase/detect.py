"""How a Coinbase recording is recognised, line by line.

Advanced Trade (the one Tradewind reads) wraps every message in
``{"channel", "timestamp", "sequence_num", "events"}``. The legacy Coinbase
Exchange ws-feed (``l2update``, ``match``, …) starts each message with its
``type`` and names a ``product_id``: it is recognised so that it can be
refused by name, not misread.
"""

from __future__ import annotations

from tradewind.exchanges.common.detect import MINE, NOT_MINE, SILENT


def recognise_advanced(line: bytes) -> int:
    if line.startswith(b'{"channel":"'):
        return MINE if b'"sequence_num"' in line else NOT_MINE
    if line.startswith(b'{"type":"') and b'"topic":"' not in line:
        return NOT_MINE
    return SILENT


def recognise_exchange(line: bytes) -> int:
    if line.startswith(b'{"type":"') and b'"topic":"' not in line:
        if b'"product_id":"' in line or line.startswith(b'{"type":"subscriptions"'):
            return MINE
        return SILENT
    return NOT_MINE if line.startswith((b'{"channel":"', b'{"topic":"', b"[")) else SILENT
