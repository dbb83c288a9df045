"""OKX v5: everything Tradewind speaks with OKX (public market data)."""
