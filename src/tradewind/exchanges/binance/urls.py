"""Binance's public endpoints, written once: the feeds and the order adapter
default to these when the settings leave the URL empty."""

SPOT_WS = "wss://stream.binance.com:9443"
SPOT_REST = "https://api.binance.com"
USDM_WS = "wss://fstream.binance.com"
USDM_REST = "https://fapi.binance.com"
COINM_WS = "wss://dstream.binance.com"
COINM_REST = "https://dapi.binance.com"
TESTNET_WS = "wss://testnet.binance.vision"
TESTNET_REST = "https://testnet.binance.vision"
