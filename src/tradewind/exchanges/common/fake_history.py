"""What every venue's fake REST history shares: the faults a download must
survive (throttled answers, bodies cut short), the log of served requests,
and reading the recordings once, on the first request.

A venue keeps only what it speaks: its throttled answer (status and body
differ per venue), its routes, its paging, and how a recorded message
becomes its data (``_index``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradewind.exchanges.common.fake_http import Request, Response
from tradewind.exchanges.common.fake_venue import read_lines


@dataclass
class HistoryFaults:
    throttle: int = 0
    """Requests still to answer with the venue's throttled answer."""
    cut_after: int = 0
    """Whole answers still to send before cutting."""
    cut: int = 0
    """Bodies still to cut halfway."""

    def throttled(self) -> bool:
        """Whether this request gets the venue's throttled answer (counts it)."""
        if self.throttle > 0:
            self.throttle -= 1
            return True
        return False

    def deliver(self, resp: Response) -> Response:
        """``resp`` whole, or its first half under its full ``Content-Length``
        and the connection closed, as a dropped transfer looks to a client."""
        if self.cut <= 0:
            return resp
        if self.cut_after > 0:
            self.cut_after -= 1
            return resp
        self.cut -= 1
        head = {**resp.headers, "Content-Length": str(len(resp.body))}
        half = resp.body[: len(resp.body) // 2]
        return Response(resp.status, half, head, resp.content_type, close=True)


@dataclass
class ServedRequest:
    path: str
    query: dict[str, str]
    status: int
    code: str = ""
    """The venue's error code from the body (Bybit's ``retCode``, Kraken's
    ``error``, also where the HTTP status is 200); empty for a good answer."""


def recorded_messages(files: list[Path]) -> Iterator[Any]:
    """Every JSON message of the recordings, in order; other lines skipped."""
    for f in files:
        for line in read_lines(f):
            try:
                yield json.loads(line)
            except ValueError:
                continue


@dataclass
class RecordedRestHistory(ABC):
    """A venue's REST history over its recordings (``files``), read on the
    first request so that a server for other venues pays nothing."""

    files: list[Path] = field(default_factory=list)
    faults: HistoryFaults = field(default_factory=HistoryFaults)
    requests: list[ServedRequest] = field(default_factory=list)
    _loaded: bool = False

    def throttle(self, n: int) -> None:
        """The next ``n`` requests get the venue's throttled answer."""
        self.faults.throttle = n

    def cut(self, n: int, after: int = 0) -> None:
        """After ``after`` more whole answers, the next ``n`` bodies stop halfway
        and the connection closes."""
        self.faults.cut, self.faults.cut_after = n, after

    def load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._index(recorded_messages(self.files))

    async def _serve(self, req: Request) -> Response:
        self.load()
        resp, code = self._answer(req)
        self.requests.append(ServedRequest(req.path, dict(req.query), resp.status, code))
        return resp

    @abstractmethod
    def _answer(self, req: Request) -> tuple[Response, str]:
        """What to send, whole or cut (``faults.deliver``), and the venue's
        error code in it."""

    @abstractmethod
    def _index(self, messages: Iterator[Any]) -> None:
        """Keep what the venue serves from the recorded ``messages``."""
