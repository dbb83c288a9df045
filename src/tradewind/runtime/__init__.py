"""The one place that wires services: clocks, bus, store, venues, leases, for
the embedded run, the backtest and one service per process."""
