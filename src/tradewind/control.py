"""Signing and verifying operator commands.

A ``Control`` event carries an HMAC-SHA256 of its canonical encoding (id,
command, args, ts) keyed with the configured control token, never the token
itself, so anything that can read the bus learns nothing that lets it forge a
command. Verification refuses commands older or newer than ``max_age_s`` and
ids already seen inside that window, so a captured command cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum

import msgspec

from tradewind.events import CancelRequest, Control, OrderRequest, encode

COMMANDS = frozenset({"halt", "resume", "status"})
Signer = Callable[[str, dict[str, str], int], str]


OrderLike = OrderRequest | CancelRequest


class UnsignedOrder(ValueError):
    """An order or cancel on the bus that risk did not sign (or that was altered)."""


def order_signature(key: str, order: OrderLike) -> str:
    """HMAC-SHA256 over the order's encoding without its signature: every field
    risk decided (symbol, side, quantity, price, ids …) is covered."""
    body = encode(msgspec.structs.replace(order, signature=""))
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def sign_order(key: str, order: OrderLike) -> OrderLike:
    return msgspec.structs.replace(order, signature=order_signature(key, order))


def check_order(key: str, order: OrderLike) -> None:
    """Raise ``UnsignedOrder`` unless risk signed exactly this order."""
    if not order.signature:
        raise UnsignedOrder(f"order {order.client_order_id[:64]!r} is not signed by risk")
    if not hmac.compare_digest(order_signature(key, order), order.signature):
        raise UnsignedOrder(f"order {order.client_order_id[:64]!r} has a wrong signature")


class Verdict(StrEnum):
    OK = "ok"
    NO_TOKEN = "no_token"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    REPLAYED = "replayed"


def canonical(id_: str, command: str, args: dict[str, str], ts: int) -> bytes:
    """One byte string per command, independent of dict order and encoder."""
    return json.dumps(
        [id_, command, sorted(args.items()), ts], separators=(",", ":"), ensure_ascii=True
    ).encode()


def signature(token: str, id_: str, command: str, args: dict[str, str], ts: int) -> str:
    return hmac.new(token.encode(), canonical(id_, command, args, ts), hashlib.sha256).hexdigest()


def check(token: str, id_: str, command: str, args: dict[str, str], ts: int, sig: str) -> bool:
    """Constant-time comparison, so timing reveals nothing about the signature."""
    return hmac.compare_digest(signature(token, id_, command, args, ts), sig)


def make_control(
    token: str, command: str, args: dict[str, str], now_ns: int, issued_by: str = ""
) -> Control:
    """A signed command with a fresh random id (ids must never repeat)."""
    id_ = f"ctl-{uuid.uuid4().hex}"
    return Control(
        id=id_,
        ts_event=now_ns,
        command=command,
        args=dict(args),
        issued_by=issued_by,
        signature=signature(token, id_, command, args, now_ns),
    )


class ControlVerifier:
    """Checks commands against the token, a time window and the ids already used."""

    def __init__(self, token: str | None, max_age_s: float, max_ids: int = 10_000) -> None:
        self._token = token
        self._window_ns = int(max_age_s * 1e9)
        self._max_ids = max_ids
        self._seen: OrderedDict[str, int] = OrderedDict()

    def verify(self, c: Control, now_ns: int) -> Verdict:
        if self._token is None:
            return Verdict.NO_TOKEN
        if c.command not in COMMANDS:
            return Verdict.UNKNOWN_COMMAND
        if not check(self._token, c.id, c.command, c.args, c.ts_event, c.signature):
            return Verdict.BAD_SIGNATURE
        if abs(now_ns - c.ts_event) > self._window_ns:
            return Verdict.EXPIRED
        self._forget(now_ns)
        if c.id in self._seen:
            return Verdict.REPLAYED
        self._seen[c.id] = c.ts_event
        if len(self._seen) > self._max_ids:
            self._seen.popitem(last=False)
        return Verdict.OK

    def snapshot(self) -> list[list[str | int]]:
        """The ids still inside the window, with their command times: bounded
        by the window (older ones would be refused as expired anyway)."""
        return [[k, ts] for k, ts in self._seen.items()]

    def restore(self, data: list[list[str | int]] | None) -> None:
        self._seen = OrderedDict((str(k), int(ts)) for k, ts in data or [])

    def _forget(self, now_ns: int) -> None:
        """Ids older than the window can go: their commands would be refused as expired."""
        horizon = now_ns - 2 * self._window_ns
        while self._seen:
            key, ts = next(iter(self._seen.items()))
            if ts >= horizon:
                break
            del self._seen[key]
