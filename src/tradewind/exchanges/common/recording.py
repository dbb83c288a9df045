"""Recordings on disk: every raw message as received, one per line, the format
``run`` and ``backtest`` replay; ``.gz`` files are written and read
transparently.

Writing happens on a thread behind a bounded queue, so a slow disk never
holds up the event loop and with it the order path: when the queue is full a
message is dropped and counted rather than waited for.
"""

from __future__ import annotations

import contextlib
import gzip
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import structlog

log = structlog.get_logger("tradewind.recording")

QUEUE = 100_000
_STOP = b""


def _suffixes(path: Path) -> tuple[str, str]:
    """``a.jsonl.gz`` -> (``a``, ``.jsonl.gz``)."""
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def _open_write(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "wb", compresslevel=6))
    return path.open("wb")


@contextlib.contextmanager
def open_recording(path: Path) -> Iterator[Iterator[bytes]]:
    """The lines of a recording, gzip or not. A gzip file cut short (the
    recorder was killed) yields what it holds and ends there."""
    if path.suffix != ".gz":
        with path.open("rb") as fh:
            yield iter(fh)
        return
    with gzip.open(path, "rb") as gz:

        def lines() -> Iterator[bytes]:
            try:
                yield from gz
            except EOFError:
                log.warning("recording ends early (cut short)", path=str(path))

        yield lines()


class Recorder:
    """Raw frames to ``path``; with ``max_bytes`` or ``max_age_s`` the
    recording rotates into numbered segments ``name.00000.jsonl.gz``,
    ``name.00001…`` (in order when sorted by name)."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = 0,
        max_age_s: float = 0.0,
        capacity: int = QUEUE,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.rotating = bool(max_bytes or max_age_s)
        self._q: queue.Queue[bytes] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.files: list[Path] = []
        self.error: BaseException | None = None

    def segment(self, n: int) -> Path:
        if not self.rotating:
            return self.path
        stem, suffix = _suffixes(self.path)
        return self.path.with_name(f"{stem}.{n:05d}{suffix or '.jsonl'}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def put(self, frame: bytes) -> None:
        """From the event loop; never blocks."""
        if not frame:
            return
        try:
            self._q.put_nowait(frame)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the file (blocking: call it off the loop
        or at the very end)."""
        if self._thread is None:
            return
        self._q.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        n = 0
        try:
            out = self._open(n)
            opened, size = time.monotonic(), 0
            while True:
                frame = self._q.get()
                if frame is _STOP:
                    break
                line = frame.rstrip(b"\r\n") + b"\n"
                out.write(line)
                self.written += 1
                size += len(line)
                if self.rotating and (
                    (self.max_bytes and size >= self.max_bytes)
                    or (self.max_age_s and time.monotonic() - opened >= self.max_age_s)
                ):
                    out.close()
                    n += 1
                    out = self._open(n)
                    opened, size = time.monotonic(), 0
            out.close()
        except OSError as exc:
            self.error = exc
            log.error("recording failed", path=str(self.path), error=str(exc))

    def _open(self, n: int) -> IO[bytes]:
        path = self.segment(n)
        self.files.append(path)
        return _open_write(path)
