"""Pre-trade risk: limits, trading state, loss limits and the kill switch."""
