"""Every Prometheus metric Tradewind exports, defined once.

Services import these objects; dashboards, alert rules and the metrics table in
``docs/metrics.md`` are written against these names. Labels are kept to low
cardinality: service, exchange, symbol, topic, group, table, reason.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# --- bus and event flow ---------------------------------------------------
EVENTS_PUBLISHED = Counter(
    "tradewind_events_published_total", "Events published to the bus.", ["service", "topic"]
)
EVENTS_CONSUMED = Counter(
    "tradewind_events_consumed_total",
    "Events consumed and acknowledged.",
    ["service", "topic"],
)
EVENTS_FAILED = Counter(
    "tradewind_events_failed_total",
    "Message processing attempts that raised.",
    ["service", "topic"],
)
DEAD_LETTERS = Counter(
    "tradewind_dead_letters_total",
    "Messages moved to the dead-letter topic.",
    ["service", "topic"],
)
DEAD_LETTER_SIZE = Gauge("tradewind_dead_letter_size", "Messages in the dead-letter topic.")
DEAD_LETTERS_DROPPED = Counter(
    "tradewind_dead_letters_dropped_total",
    "Dead letters removed by the dead-letter stream's cap (TRADEWIND_BUS__DEAD_LETTER_MAXLEN).",
)
STREAM_LAG = Gauge(
    "tradewind_stream_lag", "Messages not yet delivered to a consumer group.", ["topic", "group"]
)
STREAM_PENDING = Gauge(
    "tradewind_stream_pending",
    "Messages delivered but not yet acknowledged.",
    ["topic", "group"],
)
STREAM_LENGTH = Gauge("tradewind_stream_length", "Messages retained in a topic.", ["topic"])
STREAM_TRIMMED = Counter(
    "tradewind_stream_trimmed_total",
    "Entries dropped after every consumer group acknowledged them.",
    ["topic"],
)
STREAM_TRIM_ERRORS = Counter(
    "tradewind_stream_trim_errors_total", "Trim passes that failed or timed out.", ["topic"]
)
BATCH_SIZE = Histogram(
    "tradewind_batch_size",
    "Messages per processed batch.",
    ["service"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384),
)
BUS_RECONNECTS = Counter(
    "tradewind_bus_reconnects_total", "Reconnections to the bus backend.", ["service"]
)
BUS_HAND_OFFS = Counter(
    "tradewind_bus_hand_offs_total",
    "Entries handed from one consumer's commit to the next in the same process.",
    ["group", "topic"],
)
LOCKSTEP_BROKEN = Gauge(
    "tradewind_replay_lockstep_broken",
    "1 once a lockstep replay stopped waiting for a consumer group past "
    "TRADEWIND_FEED__LOCKSTEP_TIMEOUT_S: its outcome is no longer a function of its data.",
)

# --- latency per hop ----------------------------------------------------------
HOP_LATENCY = Histogram(
    "tradewind_hop_latency_seconds",
    "Latency of one hop, from the tick's local receive time: "
    "tick_to_signal, signal_to_decision, decision_to_ack, fill_to_persisted.",
    ["hop"],
    buckets=_LATENCY_BUCKETS,
)
TICK_TO_ORDER = Histogram(
    "tradewind_tick_to_order_seconds",
    "From a market tick's local receive time to the order it caused being sent to the venue "
    "(SUBMITTED); the venue's acknowledgement is the decision_to_ack hop.",
    buckets=_LATENCY_BUCKETS,
)
PROCESSING_SECONDS = Histogram(
    "tradewind_processing_seconds",
    "Time to process one batch.",
    ["service"],
    buckets=_LATENCY_BUCKETS,
)

# --- market data -------------------------------------------------------------
FEED_MESSAGES = Counter(
    "tradewind_feed_messages_total", "Exchange messages received.", ["exchange", "symbol", "kind"]
)
FEED_PARSE_ERRORS = Counter(
    "tradewind_feed_parse_errors_total",
    "Malformed or invalid exchange messages skipped.",
    ["exchange", "reason"],
)
FEED_RECONNECTS = Counter(
    "tradewind_feed_reconnects_total", "WebSocket reconnects.", ["exchange", "reason"]
)
FEED_SUBSCRIPTION_REJECTED = Gauge(
    "tradewind_feed_subscription_rejected",
    "1 while the venue refuses a symbol's subscription (retried until accepted).",
    ["exchange", "symbol"],
)
FEED_GAPS = Counter("tradewind_feed_gaps_total", "Sequence gaps detected.", ["exchange", "symbol"])
BOOK_RESYNCS = Counter(
    "tradewind_book_resyncs_total",
    "Order books resynchronised from a snapshot.",
    ["exchange", "symbol", "reason"],
)
BOOK_CHECKSUM_FAILURES = Counter(
    "tradewind_book_checksum_failures_total", "Book checksum mismatches.", ["exchange", "symbol"]
)
BOOK_CROSSED = Counter(
    "tradewind_book_crossed_total", "Crossed books detected.", ["exchange", "symbol"]
)
FEED_DUPLICATES = Counter(
    "tradewind_feed_duplicates_total", "Trades dropped as already seen.", ["exchange", "symbol"]
)
FEED_LAST_EVENT = Gauge(
    "tradewind_feed_last_event_timestamp_seconds",
    "Local time of the last message per feed; feed age = time() - this.",
    ["exchange", "symbol"],
)
FEED_CONNECTED = Gauge(
    "tradewind_feed_connected", "1 while a feed connection is open.", ["exchange", "connection"]
)
PUBLISH_LATENCY = Histogram(
    "tradewind_feed_publish_latency_seconds",
    "From receiving a frame to publishing its events.",
    ["exchange"],
    buckets=_LATENCY_BUCKETS,
)

# --- strategy --------------------------------------------------------------------
SIGNALS = Counter("tradewind_signals_total", "Signals emitted.", ["strategy", "symbol", "side"])
BARS = Counter("tradewind_bars_total", "Bars closed.", ["symbol"])

# --- risk ---------------------------------------------------------------------------
RISK_DECISIONS = Counter(
    "tradewind_risk_decisions_total",
    "Risk verdicts by outcome and reason.",
    ["verdict", "reason"],
)
TRADING_STATE = Gauge("tradewind_trading_state", "1 for the current trading state.", ["state"])
EXPOSURE = Gauge("tradewind_exposure", "Exposure in the account currency.", ["kind"])
LIMIT_UTILISATION = Gauge(
    "tradewind_limit_utilisation_ratio",
    "Share of a risk limit in use (1 = at the limit).",
    ["limit"],
)
KILL_SWITCH = Counter("tradewind_kill_switch_total", "Kill switch activations.", ["trigger"])
CONTROL_COMMANDS = Counter(
    "tradewind_control_commands_total",
    "Operator commands received by risk, by command and result (ok or why rejected).",
    ["command", "result"],
)
LEASE_LOSSES = Counter(
    "tradewind_lease_losses_total",
    "Single-active leases lost by a running service (it then waits as a standby).",
    ["service"],
)
FORGED = Counter(
    "tradewind_forged_events_total",
    "Events refused as unsigned, wrongly signed or about unknown orders (dead-lettered).",
    ["service", "kind"],
)

# --- execution and portfolio --------------------------------------------------------
ORDERS = Counter("tradewind_orders_total", "Order state transitions.", ["exchange", "status"])
OPEN_ORDERS = Gauge("tradewind_open_orders", "Orders not yet in a terminal state.")
ILLEGAL_TRANSITIONS = Counter(
    "tradewind_order_illegal_transitions_total",
    "Order state transitions refused.",
    ["from_status", "to_status"],
)
FILLS = Counter("tradewind_fills_total", "Fills.", ["exchange", "symbol", "liquidity"])
FEES = Counter(
    "tradewind_fees_total",
    "Fees paid, in the fill's fee currency (the coin for inverse contracts).",
    ["exchange", "currency"],
)
POSITION = Gauge(
    "tradewind_position", "Position quantity (contracts for inverse).", ["exchange", "symbol"]
)
REALIZED_PNL = Gauge(
    "tradewind_realized_pnl",
    "Realized PnL in the settlement currency (the coin for inverse contracts): sum by currency.",
    ["exchange", "symbol", "currency"],
)
UNREALIZED_PNL = Gauge(
    "tradewind_unrealized_pnl",
    "Unrealized PnL at the last mark, in the settlement currency: sum by currency.",
    ["exchange", "symbol", "currency"],
)
EXCHANGE_ERRORS = Counter(
    "tradewind_exchange_errors_total", "Errors from exchange order APIs.", ["exchange", "kind"]
)
CIRCUIT_OPEN = Gauge(
    "tradewind_circuit_open", "1 while the execution circuit breaker stops sending.", ["exchange"]
)

# --- persistence ---------------------------------------------------------------------
ROWS_WRITTEN = Counter("tradewind_rows_written_total", "Rows inserted.", ["table"])
DB_ERRORS = Counter("tradewind_db_errors_total", "Database operations that failed.", ["kind"])
DB_WRITE_SECONDS = Histogram(
    "tradewind_db_write_seconds",
    "Time to write and commit one batch.",
    buckets=_LATENCY_BUCKETS,
)
DB_SIZE = Gauge("tradewind_db_size_bytes", "Size of the database (pg_database_size).")
DB_VOLUME = Gauge(
    "tradewind_db_volume_bytes", "Configured size of the database's volume (0: not configured)."
)
DB_FULL = Gauge(
    "tradewind_db_full", "1 while db_writer holds its batches because the database is full."
)
PARTITIONS_CREATED = Counter(
    "tradewind_db_partitions_created_total", "Market table partitions created.", ["table"]
)
PARTITIONS_DROPPED = Counter(
    "tradewind_db_partitions_dropped_total", "Expired partitions dropped by retention.", ["table"]
)
RETENTION_FREED = Counter(
    "tradewind_db_retention_freed_bytes_total", "Bytes freed by dropping expired partitions."
)

# --- process ---------------------------------------------------------------------------
EVENT_LOOP_LAG = Histogram(
    "tradewind_event_loop_lag_seconds",
    "How late the event loop runs a scheduled callback.",
    buckets=_LATENCY_BUCKETS,
)
SERVICE_UP = Gauge("tradewind_service_ready", "1 while the service is ready.", ["service"])
