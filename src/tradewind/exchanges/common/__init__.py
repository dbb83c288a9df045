"""Machinery every venue shares: the order book and its sync, the live feed base
(reconnect, sharding), REST pacing, dedup, validation, errors and the fake
server's plumbing. It knows no venue by name."""
