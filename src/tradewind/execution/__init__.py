"""Order execution: the order state machine, the outbox, reconciliation, the
circuit breaker and the venue interface that the paper exchange and the live
adapters (Binance, ccxt) implement."""
