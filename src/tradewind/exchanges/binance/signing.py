"""Binance request signatures: HMAC-SHA256 (hex) or Ed25519 (base64), chosen by the key.

An Ed25519 key is given as its PKCS#8 PEM private key in the secret file (the
API key is then the one Binance issued for the registered public key); any
other secret is an HMAC secret. REST signs the query string exactly as sent
(the ``totalParams`` of Binance's docs); the WebSocket API signs its params
sorted by name, unencoded, which is why ``ws_payload`` exists. An Ed25519
signature is base64, so it must be percent-encoded in a query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote

PEM_MARK = "-----BEGIN"


class Signer:
    def __init__(self, secret: str) -> None:
        self.ed25519 = secret.lstrip().startswith(PEM_MARK)
        self._hmac_key = b""
        self._ed: Any = None
        if self.ed25519:
            try:
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
                from cryptography.hazmat.primitives.serialization import load_pem_private_key
            except ImportError as exc:  # pragma: no cover - cryptography is a dependency
                raise ValueError("Ed25519 keys need the 'cryptography' package") from exc
            try:
                key = load_pem_private_key(secret.strip().encode(), password=None)
            except (ValueError, TypeError) as exc:
                raise ValueError("the API secret looks like a PEM key but does not load") from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("the API secret is a PEM key but not an Ed25519 private key")
            self._ed = key
        else:
            self._hmac_key = secret.encode()

    @property
    def kind(self) -> str:
        return "Ed25519" if self.ed25519 else "HMAC-SHA256"

    def sign(self, payload: str) -> str:
        """The signature of ``payload`` as Binance expects it (not yet URL-encoded)."""
        if self._ed is not None:
            return base64.b64encode(self._ed.sign(payload.encode())).decode()
        return hmac.new(self._hmac_key, payload.encode(), hashlib.sha256).hexdigest()

    def query_param(self, payload: str) -> str:
        """``signature=…`` ready to append to a query string."""
        return "signature=" + quote(self.sign(payload), safe="")


def ws_payload(params: dict[str, str]) -> str:
    """What a WebSocket API request signs: every param but ``signature``, sorted
    by name, ``k=v`` joined by ``&``, values not encoded."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
