"""Events <-> table rows, derived from the mappings in ``schema.py``.

Rows are tuples in the order of ``COLUMNS[table]`` (the struct's field order);
money stays ``Decimal`` here and each store adapts it to its column type.

Where a table stores every field of its event as it is (trades and quotes:
nearly every row), a row is the struct's own tuple (``msgspec.structs.astuple``,
in C), and a run of them is mapped with one ``map`` call. Measured: 155 → 23 ms
per 100k trades (bench/README.md). Other events go through one
``operator.attrgetter`` (also C) plus a JSON encoding of their list and dict
fields. Enum members are ``StrEnum``s, so they are stored as their text.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable
from decimal import Decimal
from itertools import groupby
from typing import Any

import msgspec
from sqlalchemy import Table

from tradewind.events import Event
from tradewind.storage.schema import BY_EVENT, MAPPINGS, Kind, Mapping

Row = tuple[Any, ...]


def _builder(m: Mapping) -> Callable[[Any], Row]:
    names = tuple(f.field for f in m.fields)
    json_at = [i for i, f in enumerate(m.fields) if f.kind is Kind.JSON]
    if names == m.event.__struct_fields__ and not json_at:
        return msgspec.structs.astuple
    get = operator.attrgetter(*names)
    if not json_at:
        return get

    def build(e: Any) -> Row:
        row = list(get(e))
        for i in json_at:
            row[i] = json.dumps(row[i], sort_keys=True)
        return tuple(row)

    return build


def _reader(m: Mapping) -> Callable[[Row], Any]:
    """A row (columns as ``COLUMNS``) back to its event, whichever store it came
    from: SQLite hands back money as text and booleans as integers."""
    convs: list[Callable[[Any], Any]] = []
    for f in m.fields:
        conv: Callable[[Any], Any]
        if f.kind is Kind.ENUM:
            conv = f.py
        elif f.kind is Kind.DECIMAL:
            conv = _decimal
        elif f.kind is Kind.JSON:
            conv = _json_of(f.hint)
        elif f.py in (bool, int, float):
            conv = f.py
        else:
            conv = _same
        convs.append(conv if not f.nullable else _or_none(conv))
    names = [f.field for f in m.fields]
    cls, extra = m.event, m.read_back

    def read(row: Row) -> Any:
        kw = {n: c(v) for n, c, v in zip(names, convs, row, strict=True)}
        return cls(**kw, **extra)

    return read


def _same(v: Any) -> Any:
    return v


def _decimal(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _json_of(hint: Any) -> Callable[[Any], Any]:
    """JSON text from a table, or values already decoded (a Parquet export's
    nested book levels)."""

    def conv(v: Any) -> Any:
        return msgspec.convert(json.loads(v) if isinstance(v, str) else v, hint)

    return conv


def _or_none(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def maybe(v: Any) -> Any:
        return None if v is None else conv(v)

    return maybe


COLUMNS: dict[Table, tuple[str, ...]] = {m.table: m.columns for m in MAPPINGS}
"""The column order of each table's rows."""

ROW_MAPPERS: dict[type[Any], tuple[Table, Callable[[Any], Row]]] = {
    cls: (m.table, _builder(m)) for cls, m in BY_EVENT.items()
}
READERS: dict[type[Any], Callable[[Row], Any]] = {cls: _reader(m) for cls, m in BY_EVENT.items()}


def group_rows(events: Iterable[Event]) -> dict[Table, list[Row]]:
    """Rows per table (columns as ``COLUMNS[table]``), in event order within a
    table; events with no table (replies) are left out."""
    out: dict[Table, list[Row]] = {}
    mappers = ROW_MAPPERS
    for cls, run in groupby(events, type):
        m = mappers.get(cls)
        if m is None:
            continue
        table, fn = m
        rows = out.get(table)
        if rows is None:
            rows = out[table] = []
        rows.extend(map(fn, run))
    return out
