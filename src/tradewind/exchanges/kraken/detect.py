"""How a Kraken recording (WS v1 or v2) is recognised, line by line.

v1 sends arrays ``[channelID, payload, name, pair]`` and objects with an
``event`` of its own names; v2 sends ``{"channel": …}`` without Coinbase's
``sequence_num``, and ``{"method": …}`` acks. OKX's ``arg`` is never Kraken's.
"""

from __future__ import annotations

import re

from tradewind.exchanges.common.detect import MINE, NOT_MINE, SILENT

_V1_EVENT = re.compile(rb'"event":"(?:heartbeat|systemStatus|subscriptionStatus|pong)"')


def recognise(line: bytes) -> int:
    if line.startswith(b"[") and line[1:2].isdigit():
        return MINE
    if not line.startswith(b"{"):
        return SILENT
    if b'"arg":' in line or b'"topic":"' in line[:48]:
        return NOT_MINE
    if line.startswith(b'{"connectionID"') or _V1_EVENT.search(line[:80]):
        return MINE
    if line.startswith(b'{"channel":"'):
        return NOT_MINE if b'"sequence_num"' in line else MINE
    if line.startswith(b'{"method":"'):
        return MINE
    return SILENT
