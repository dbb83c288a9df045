"""Exchange adapters: market data parsers and feeds, replay, the paper exchange."""
