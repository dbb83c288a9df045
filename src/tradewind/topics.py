"""Topic names and symbol partitioning.

All market events of a symbol (trades, quotes, book deltas) share one ordered
topic, ``market``, partitioned by a stable hash of the symbol: a strategy that
reads trades and quotes of one symbol must see them in exchange order, which
separate streams per event type could not guarantee. ``market.trades``,
``market.quotes`` and ``market.books`` name the event kinds inside it.
"""

from __future__ import annotations

import zlib
from typing import Final

MARKET: Final = "market"
BARS: Final = "bars"
SIGNALS: Final = "signals"
DECISIONS: Final = "risk.decisions"
ORDERS: Final = "orders"
EXECUTIONS: Final = "executions"
POSITIONS: Final = "positions"
CONTROL: Final = "control"
CONTROL_REPLIES: Final = "control.replies"
DEAD_LETTER: Final = "dead_letter"

ALL: Final = (MARKET, BARS, SIGNALS, DECISIONS, ORDERS, EXECUTIONS, POSITIONS, CONTROL)
PARTITIONED: Final = frozenset({MARKET})
TRIMMABLE: Final = frozenset({MARKET})
"""Topics trimmed by length (``MAXLEN ~``) as they are written. Every other
topic is trimmed only below what all its consumer groups, db_writer's among
them, have acknowledged (``Bus.trim_consumed``, see docs/distributed.md)."""


SERVICES: Final = ("ws", "signal", "risk", "execution", "db_writer")
CONSUMES: Final[dict[str, tuple[str, ...]]] = {
    "ws": (),
    "signal": (MARKET, EXECUTIONS),
    "risk": (SIGNALS, EXECUTIONS, MARKET, CONTROL),
    "execution": (ORDERS, MARKET),
    "db_writer": (*ALL, DEAD_LETTER),
    "operator": (CONTROL_REPLIES,),
}
PRODUCES: Final[dict[str, tuple[str, ...]]] = {
    "ws": (MARKET,),
    "signal": (BARS, SIGNALS),
    "risk": (DECISIONS, ORDERS, POSITIONS, CONTROL, CONTROL_REPLIES),
    "execution": (EXECUTIONS,),
    "db_writer": (),
    "operator": (CONTROL,),
}
"""Who reads and who writes each topic: the services, and ``operator`` (the
``tradewind halt/resume/status`` client). Every consumer also writes
``dead_letter``. The Redis ACL users are generated from these two tables
(``tradewind.acl``), so a topic a service does not produce is one it cannot
write: only risk writes ``orders``, only execution ``executions``."""


ORDER_PATH: Final = ("signal", "risk", "execution")
"""The order-path services ``tradewind service signal,risk,execution`` runs in
one process (docs/distributed.md, "The order path in one process")."""
GROUPS: Final[dict[str, tuple[str, ...]]] = {"orderpath": ORDER_PATH}
"""Services grouped in one process, by the name of their group's ACL user."""


def _union(table: dict[str, tuple[str, ...]], members: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for m in members for t in table[m]))


for _group, _members in GROUPS.items():
    CONSUMES[_group] = _union(CONSUMES, _members)
    PRODUCES[_group] = _union(PRODUCES, _members)


def partition_of(symbol: str, partitions: int) -> int:
    """Stable across processes and Python versions (unlike ``hash``)."""
    if partitions <= 1:
        return 0
    return zlib.crc32(symbol.encode()) % partitions
