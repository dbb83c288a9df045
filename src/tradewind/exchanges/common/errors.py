"""Why an exchange message was rejected; the reason becomes a metric label."""

from __future__ import annotations


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
