"""Binance's public endpoints, written once: the feeds and the order adapter
default to these when the settings leave the URL empty. Checked against
Binance's spot and USD-M docs as of 2026-06 (see docs/execution.md)."""

SPOT_WS = "wss://stream.binance.com:9443"
SPOT_REST = "https://api.binance.com"
SPOT_WS_API = "wss://ws-api.binance.com:443/ws-api/v3"
USDM_WS = "wss://fstream.binance.com"
USDM_REST = "https://fapi.binance.com"
COINM_WS = "wss://dstream.binance.com"
COINM_REST = "https://dapi.binance.com"
# The spot testnet's streams and WebSocket API moved off testnet.binance.vision in 2025.
TESTNET_WS = "wss://stream.testnet.binance.vision"
TESTNET_REST = "https://testnet.binance.vision"
TESTNET_WS_API = "wss://ws-api.testnet.binance.vision/ws-api/v3"
WS_API_PATH = "/ws-api/v3"
