"""How an OKX v5 recording is recognised, line by line.

Every push names its subscription in ``arg`` (``{"channel", "instId"}``), and
every event (``subscribe``, ``error``) carries ``arg`` or a ``connId``; the
text ``pong`` answers our pings. Kraken's ``event`` messages never have ``arg``.
"""

from __future__ import annotations

from tradewind.exchanges.common.detect import MINE, NOT_MINE, SILENT


def recognise(line: bytes) -> int:
    if line == b"pong":
        return SILENT
    if line.startswith(b'{"arg":{"channel":"'):
        return MINE
    if line.startswith(b'{"event":"') and (b'"arg":{' in line or b'"connId":"' in line):
        return MINE
    return NOT_MINE if line.startswith((b"{", b"[")) else SILENT
