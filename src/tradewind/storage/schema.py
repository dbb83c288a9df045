"""The event <-> row mapping: one declaration per stored event.

Each ``Mapping`` names an event struct and its table; the columns, their types
and nullability follow from the struct's fields (``str`` and enums are TEXT,
``float`` FLOAT, ``int`` BIGINT unless declared small, ``Decimal`` money,
lists and dicts JSON text, ``X | None`` nullable), so adding a field to an
event and to its table is one change. ``rows.py`` derives the row builders
and the row readers from the same mappings, ``queries.py`` the reads, and the
Alembic migrations are checked against this metadata in CI (the migrations
themselves stay as written history).

Every table's key is the event's stable id, so writing the same event twice
is a no-op (``ON CONFLICT DO NOTHING``). Market tables are partitioned by
``ts_event`` on PostgreSQL (``partitions.py``), and a partitioned table's keys
must hold the partition column: their key is ``(id, ts_event)``. An id fixes
its event and so its ``ts_event``, so a redelivered event still conflicts.
SQLite keeps plain tables keyed by ``id`` (migration 0003 leaves it alone).

Money columns are NUMERIC on PostgreSQL and TEXT on SQLite (whose NUMERIC
affinity would round-trip through binary floats).
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.schema import SchemaItem
from sqlalchemy.types import TypeEngine

from tradewind.events import (
    Bar,
    BookDelta,
    CancelRequest,
    Control,
    DeadLetter,
    Fill,
    OrderRequest,
    OrderUpdate,
    Position,
    Quote,
    RiskDecision,
    Signal,
    Trade,
)

metadata = MetaData()


def money() -> TypeEngine[Any]:
    return Numeric(38, 18).with_variant(Text(), "sqlite")


class Kind(enum.Enum):
    """How a field's value becomes a column value and back."""

    PLAIN = "plain"
    ENUM = "enum"
    JSON = "json"
    DECIMAL = "decimal"


@dataclass(frozen=True)
class Field:
    column: str
    field: str
    kind: Kind
    nullable: bool
    py: type[Any]
    """The field's type without ``None``, unsubscripted: the enum class for ENUM …"""
    hint: Any
    """… and subscripted (``list[tuple[float, float]]``), for JSON read back."""


@dataclass(frozen=True)
class Mapping:
    event: type[Any]
    table: Table
    fields: tuple[Field, ...]
    """One per column, in the table's column order."""
    partitioned: bool
    read_back: dict[str, Any]
    """Values of required fields that are not stored, for rows read back."""
    run_scoped: bool = False
    """The table has a ``run_id`` column: the run (``runs``) that added the
    row, stamped when that run's row is stored (``storage.runs``); NULL for
    rows written outside a command-line run (the distributed services)."""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.fields)


def _field(cls: type[Any], name: str, column: str, small: bool) -> tuple[Field, TypeEngine[Any]]:
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    nullable = union and type(None) in args
    if nullable:
        (hint,) = (a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    sql: TypeEngine[Any]
    kind = Kind.PLAIN
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        sql, kind = Text(), Kind.ENUM
    elif origin is bool:
        sql = Boolean()
    elif origin is int:
        sql = Integer() if small else BigInteger()
    elif origin is float:
        sql = Float()
    elif origin is Decimal:
        sql, kind = money(), Kind.DECIMAL
    elif origin is str:
        sql = Text()
    elif origin is bytes:
        sql = LargeBinary()
    elif origin in (list, dict):
        sql, kind = Text(), Kind.JSON
    else:
        raise TypeError(f"{cls.__name__}.{name}: no column type for {hint!r}")
    return Field(column, name, kind, nullable, origin, hint), sql


def _map(
    name: str,
    event: type[Any],
    *extra: SchemaItem,
    not_stored: tuple[str, ...] = (),
    read_back: dict[str, Any] | None = None,
    renamed: dict[str, str] | None = None,
    small: tuple[str, ...] = (),
    partitioned: bool = False,
    run_scoped: bool = False,
) -> Mapping:
    """Declare ``event``'s table: every field is a column (in the struct's order)
    unless listed in ``not_stored``; such a field reads back as its default,
    or as ``read_back[field]`` when it has none, so rows read back are whole
    events."""
    renamed = renamed or {}
    read_back = read_back or {}
    fields: list[Field] = []
    columns: list[SchemaItem] = []
    info = msgspec.inspect.type_info(event)
    assert isinstance(info, msgspec.inspect.StructType)
    required = {f.name for f in info.fields if f.required}
    for fname in event.__struct_fields__:
        if fname in not_stored:
            if fname in required and fname not in read_back:
                raise TypeError(f"{event.__name__}.{fname} is not stored and has no default")
            continue
        f, sql = _field(event, fname, renamed.get(fname, fname), fname in small)
        fields.append(f)
        columns.append(Column(f.column, sql, nullable=f.nullable or False))
    if run_scoped:
        # Not an event field: rows are written without it (``rows.COLUMNS``).
        columns.append(Column("run_id", Text(), nullable=True))
        columns.append(Index(f"ix_{name}_run_id", "run_id"))
    key = ("id", "ts_event") if partitioned else ("id",)
    kw: dict[str, Any] = {"postgresql_partition_by": "RANGE (ts_event)"} if partitioned else {}
    table = Table(
        name,
        metadata,
        *columns,
        PrimaryKeyConstraint(*key, name=f"{name}_pkey"),
        *extra,
        **kw,
    )
    return Mapping(event, table, tuple(fields), partitioned, read_back, run_scoped)


MAPPINGS: tuple[Mapping, ...] = (
    _map(
        "trades",
        Trade,
        # Risk's rebuild asks for the last trade of a symbol before a time.
        Index("ix_trades_exchange_symbol_ts_event", "exchange", "symbol", "ts_event"),
        partitioned=True,
    ),
    _map("quotes", Quote, partitioned=True),
    _map("book_deltas", BookDelta, partitioned=True),
    _map(
        "bars",
        Bar,
        not_stored=("ts_recv",),
        read_back={"ts_recv": 0},
        small=("trades",),
        partitioned=True,
    ),
    _map("signals", Signal, run_scoped=True),
    _map("risk_decisions", RiskDecision, not_stored=("ts_recv",), run_scoped=True),
    _map(
        "orders",
        OrderRequest,
        UniqueConstraint("client_order_id"),
        # The signature is stored as the audit record of who issued the order
        # (an HMAC, not the key); execution refuses a replayed client_order_id.
        not_stored=("ref_bid", "ref_ask", "ref_last"),
        run_scoped=True,
    ),
    _map("cancel_requests", CancelRequest, not_stored=("ts_recv",), run_scoped=True),
    _map(
        "order_updates",
        OrderUpdate,
        Index("ix_order_updates_client_order_id", "client_order_id"),
        not_stored=("ts_recv",),
        small=("seq",),
        run_scoped=True,
    ),
    _map("fills", Fill, Index("ix_fills_client_order_id", "client_order_id"), run_scoped=True),
    _map("positions", Position, run_scoped=True),
    # A control signature is not stored: a risk rebuilt from the store has no
    # used-command ids, so a stored signature would be a replayable command.
    _map("control_events", Control, not_stored=("signature",)),
    _map(
        "dead_letters",
        DeadLetter,
        # size and sha256 describe the whole message on the bus (the payload
        # column keeps at most DEAD_PAYLOAD_BYTES of it).
        renamed={"group": "group_name"},
        small=("deliveries",),
    ),
)

BY_EVENT: dict[type[Any], Mapping] = {m.event: m for m in MAPPINGS}
BY_TABLE: dict[str, Mapping] = {m.table.name: m for m in MAPPINGS}
PARTITIONED: tuple[str, ...] = tuple(m.table.name for m in MAPPINGS if m.partitioned)
RUN_SCOPED: tuple[str, ...] = tuple(m.table.name for m in MAPPINGS if m.run_scoped)
"""The trading tables: each row names the run that added it (``run_id``)."""
"""The market tables: partitioned by ``ts_event`` on PostgreSQL, subject to retention."""

trades = BY_EVENT[Trade].table
quotes = BY_EVENT[Quote].table
book_deltas = BY_EVENT[BookDelta].table
bars = BY_EVENT[Bar].table
signals = BY_EVENT[Signal].table
risk_decisions = BY_EVENT[RiskDecision].table
orders = BY_EVENT[OrderRequest].table
cancel_requests = BY_EVENT[CancelRequest].table
order_updates = BY_EVENT[OrderUpdate].table
fills = BY_EVENT[Fill].table
positions = BY_EVENT[Position].table
control_events = BY_EVENT[Control].table
dead_letters = BY_EVENT[DeadLetter].table

runs = Table(
    "runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("command", Text, nullable=False),
    Column("started_ns", BigInteger, nullable=False),
    Column("finished_ns", BigInteger, nullable=False),
    Column("strategy", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("summary", Text, nullable=False),
)
"""One row per run written into the database (``storage.runs``); JSON text
in ``params``, ``data`` and ``summary``. Not an event: no mapping."""
