"""Market tables <-> Apache Arrow / Parquet, from the same mappings as the rows.

The on-disk layout is Hive-style, one directory per table, day and symbol
(``trades/date=2025-12-05/symbol=BTCUSDT/part-0.parquet``), so pandas,
polars, DuckDB and ``pyarrow.dataset`` read it as one dataset and prune by
day and symbol. Columns are typed: text as strings, times as int64
nanoseconds, and prices and quantities as ``decimal128(38, 18)`` holding the
shortest decimal that the stored float stands for (``61837.63``, not
``61837.629999999997``): the exchange's own digits. Book levels (JSON text
in the database) are nested columns, ``list<struct<price, qty>>`` of the same
decimals, so a reader gets ``bids[0].price`` without parsing text.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import BigInteger, Boolean, Float, Integer, LargeBinary, Text

from tradewind.storage.rows import READERS
from tradewind.storage.schema import BY_TABLE, PARTITIONED, Kind

DECIMAL = pa.decimal128(38, 18)
LEVEL = pa.struct(
    [pa.field("price", DECIMAL, nullable=False), pa.field("qty", DECIMAL, nullable=False)]
)
LEVELS = pa.list_(pa.field("level", LEVEL, nullable=False))
"""Book levels: ``[(price, qty), ...]`` as a list of structs."""
_LEVELS_HINT = list[tuple[float, float]]
_DECODE_LEVELS = msgspec.json.Decoder(list[_LEVELS_HINT])
EXACT_COLUMNS = frozenset(
    {"price", "qty", "bid", "bid_qty", "ask", "ask_qty", "open", "high", "low", "close", "volume"}
)
"""Float columns of the market tables that hold exchange decimals."""
TABLES = PARTITIONED
_MAX_SCALE = 12
_EXACT_INT = 2**53


def _arrow_type(table: str, column: str) -> pa.DataType:
    m = BY_TABLE[table]
    (f,) = (f for f in m.fields if f.column == column)
    if f.kind is Kind.JSON:
        if msgspec.convert([[1.0, 2.0]], f.hint) != [(1.0, 2.0)]:
            raise TypeError(f"{table}.{column}: only book levels have an Arrow type")
        return LEVELS
    t = m.table.c[column].type
    if isinstance(t, Float):
        return DECIMAL if column in EXACT_COLUMNS else pa.float64()
    if isinstance(t, Boolean):
        return pa.bool_()
    if isinstance(t, BigInteger):
        return pa.int64()
    if isinstance(t, Integer):
        return pa.int32()
    if isinstance(t, LargeBinary):
        return pa.binary()
    if isinstance(t, Text):
        return pa.string()
    raise TypeError(f"{table}.{column}: no Arrow type for {t!r}")


def arrow_schema(table: str) -> pa.Schema:
    m = BY_TABLE[table]
    return pa.schema(
        [pa.field(f.column, _arrow_type(table, f.column), nullable=f.nullable) for f in m.fields]
    )


def exact_decimal(values: pa.Array) -> pa.Array:
    """Floats as the shortest decimals they stand for, as ``decimal128(38, 18)``.

    Vectorised: the smallest scale ``s`` at which ``round(x·10^s) / 10^s == x``
    for every value gives each value's digits exactly (a correctly rounded
    division of two exact integers is the double nearest that decimal). Values
    too large for that (beyond 2^53 once scaled) go one by one through ``repr``.
    """
    if values.null_count:
        raise ValueError("exact_decimal: null values")
    for s in range(_MAX_SCALE + 1):
        scale = 10.0**s
        scaled = pc.round(pc.multiply(values, scale))
        if len(values) and not pc.all(pc.equal(pc.divide(scaled, scale), values)).as_py():
            continue
        if len(values) and pc.max(pc.abs(scaled)).as_py() >= _EXACT_INT:
            break
        ints = pc.cast(scaled, pa.int64()).cast(pa.decimal128(38, 0))
        return ints.view(pa.decimal128(38, s)).cast(DECIMAL)
    return pa.array([Decimal(repr(v)) for v in values.to_pylist()], DECIMAL)


def levels(texts: Sequence[str]) -> pa.Array:
    """Book levels stored as JSON text (``[[price, qty], ...]``, one list per
    row) as a ``LEVELS`` array of exact decimals. One JSON decode for all
    rows, one vectorised decimal conversion for all prices and for all
    quantities."""
    rows = _DECODE_LEVELS.decode(b"[" + ",".join(texts).encode() + b"]")
    offsets = [0, *itertools.accumulate(map(len, rows))]
    flat = list(itertools.chain.from_iterable(rows))
    prices = exact_decimal(pa.array([p for p, _ in flat], pa.float64()))
    qtys = exact_decimal(pa.array([q for _, q in flat], pa.float64()))
    values = pa.StructArray.from_arrays([prices, qtys], fields=list(LEVEL))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=LEVELS)


def levels_back(arr: pa.Array) -> list[list[tuple[float, float]]]:
    """A ``LEVELS`` array back to the events' ``(price, qty)`` floats (the
    decimal's text parsed as a float: correctly rounded, so the stored float)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    values = arr.flatten()
    prices = pc.cast(pc.cast(values.field("price"), pa.string()), pa.float64()).to_pylist()
    qtys = pc.cast(pc.cast(values.field("qty"), pa.string()), pa.float64()).to_pylist()
    pairs = list(zip(prices, qtys, strict=True))
    offsets = pc.subtract(arr.offsets, arr.offsets[0]).to_pylist()
    return [pairs[a:b] for a, b in itertools.pairwise(offsets)]


def to_batch(table: str, rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Rows (columns as the mapping's) as one typed record batch."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays: list[pa.Array] = []
    for field, col in zip(schema, columns, strict=True):
        if field.type == DECIMAL:
            arrays.append(exact_decimal(pa.array(col, pa.float64())))
        elif field.type == LEVELS:
            arrays.append(levels(col))
        elif field.type == pa.bool_():
            arrays.append(pa.array([bool(v) for v in col], pa.bool_()))  # SQLite: 0/1
        else:
            arrays.append(pa.array(col, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def csv_parser(table: str) -> Callable[[bytes, int], list[pa.RecordBatch]]:
    """A parser of PostgreSQL CSV (``COPY … TO STDOUT (FORMAT csv)``) of the
    table's columns into typed batches of at most ``rows``: NULL is an unquoted empty field,
    booleans are ``t``/``f``, floats in shortest form parse as exact decimals,
    book levels are read as text and then nested (``levels``)."""
    schema = arrow_schema(table)
    nested = [i for i, t in enumerate(schema.types) if t == LEVELS]
    read = pacsv.ReadOptions(column_names=schema.names)
    convert = pacsv.ConvertOptions(
        column_types={
            n: pa.string() if t == LEVELS else t
            for n, t in zip(schema.names, schema.types, strict=True)
        },
        true_values=["t"],
        false_values=["f"],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )

    def parse(data: bytes, rows: int) -> list[pa.RecordBatch]:
        t = pacsv.read_csv(pa.py_buffer(data), read_options=read, convert_options=convert)
        for i in nested:
            t = t.set_column(i, schema.field(i), levels(t.column(i).to_pylist()))
        batches: list[pa.RecordBatch] = t.cast(schema).combine_chunks().to_batches(rows)
        return batches

    return parse


def by_symbol(
    batch: pa.RecordBatch, column: str = "symbol"
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The batch's rows of each symbol, in their order (a stable sort by symbol,
    then one slice per run)."""
    if batch.num_rows == 0:
        return
    col = batch.column(column)
    if pc.count_distinct(col).as_py() > 1:
        batch = batch.take(pc.sort_indices(col))
        col = batch.column(column)
    runs = pc.run_end_encode(col)
    start = 0
    for value, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        yield str(value), batch.slice(start, end - start)
        start = end


def partition_dir(root: Path, table: str, day: str, symbol: str) -> Path:
    return root / table / f"date={day}" / f"symbol={symbol}"


def files(root: Path) -> dict[str, list[Path]]:
    """Parquet files of each market table under an export directory."""
    out: dict[str, list[Path]] = {}
    for table in TABLES:
        found = sorted((root / table).glob("date=*/symbol=*/*.parquet"))
        if found:
            out[table] = found
    return out


def read_events(path: Path, table: str, batch_rows: int = 65_536) -> Iterator[list[Any]]:
    """Events of one exported file, a record batch at a time, in file order
    (exports are sorted by ``ts_event`` within a file)."""
    m = BY_TABLE[table]
    reader = READERS[m.event]
    f = pq.ParquetFile(path)
    names = list(m.columns)
    for batch in f.iter_batches(batch_size=batch_rows, columns=names):
        cols: list[list[Any]] = []
        for name in names:
            arr = batch.column(name)
            if arr.type == DECIMAL:
                # Decimal → text → float is correctly rounded: the stored float.
                arr = pc.cast(pc.cast(arr, pa.string()), pa.float64())
            elif arr.type == LEVELS:
                cols.append(levels_back(arr))
                continue
            cols.append(arr.to_pylist())
        yield [reader(row) for row in zip(*cols, strict=True)]
