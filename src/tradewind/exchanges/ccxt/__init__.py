"""Orders through ccxt, for venues without an adapter of their own."""
