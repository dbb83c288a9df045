"""Operator commands for a process with no Redis: a Unix socket beside the
database that ``tradewind halt / resume / status`` reach.

The socket carries the same signed ``Control`` events the distributed kill
switch puts on the bus, and the endpoint only relays them onto the in-process
bus: risk verifies the signature, time window and id exactly as it does in
distributed mode, so the socket grants nothing the token does not. Each frame
is a 4-byte big-endian length and the event's bus encoding, capped in size and
decoded with the bus's own checks before anything trusts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import stat
import time
import uuid
from pathlib import Path

import msgspec

from tradewind.bus import Bus
from tradewind.events import Control, ControlReply, decode, encode
from tradewind.topics import CONTROL, CONTROL_REPLIES

MAX_FRAME = 64 * 1024
READ_TIMEOUT_S = 5.0
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class EndpointError(RuntimeError):
    """The endpoint cannot listen or be reached; the message is one line."""


def default_socket(db: Path) -> Path:
    """Beside the database: one trading process per database, so one socket."""
    return db.with_name(db.name + ".sock")


def token_file(db: Path) -> Path:
    return db.with_name(db.name + ".control-token")


def local_token(db: Path, create: bool) -> str | None:
    """The control token kept beside the database (mode 0600), made on first
    use when ``create``. It belongs to the database, not to one run: risk signs
    the commands it applied with it, and a restart on the same database must
    verify them to restore a halt."""
    path = token_file(db)
    try:
        tok = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return None
        tok = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise EndpointError(f"cannot write the control token {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as f:
            f.write(tok + "\n")
        return tok
    except OSError as exc:
        raise EndpointError(f"cannot read the control token {path}: {exc.strerror}") from None
    if path.stat().st_mode & 0o077:
        raise EndpointError(f"control token {path} is readable by others; chmod 600 it")
    return tok


async def exchange(bus: Bus, c: Control, timeout: float) -> ControlReply | None:
    """Publish ``c`` and wait for risk's reply to it; None after ``timeout``."""
    group = f"cli-{uuid.uuid4().hex[:12]}"
    sub = await bus.subscribe([CONTROL_REPLIES], group, "cli")
    try:
        await bus.publish(CONTROL, [c])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msgs = await sub.fetch(256, min(left, 0.5))
            if msgs:
                await sub.ack(msgs)
            for m in msgs:
                if isinstance(m.event, ControlReply) and m.event.request_id == c.id:
                    return m.event
        return None
    finally:
        await sub.close()
        await bus.drop_group(CONTROL_REPLIES, group)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(4), READ_TIMEOUT_S)
    size = int.from_bytes(head, "big")
    if not 0 < size <= MAX_FRAME:
        raise ValueError(f"frame of {size} bytes (at most {MAX_FRAME})")
    return await asyncio.wait_for(reader.readexactly(size), READ_TIMEOUT_S)


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _check_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise EndpointError(
            f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; "
            "use --control-socket with a shorter path"
        )


def claim(path: Path) -> None:
    """Refuse a path another live process listens on; remove a socket left by
    a process that was killed. Called before a token file is written, so a
    second process never overwrites the first one's token."""
    _check_path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise EndpointError(f"control socket path {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise EndpointError(f"another process is listening on control socket {path}")


class ControlEndpoint:
    """Listens on ``path`` while the process runs; the path is removed on close."""

    def __init__(self, bus: Bus, path: Path, reply_timeout_s: float) -> None:
        _check_path(path)
        self.bus = bus
        self.path = path
        self.reply_timeout_s = reply_timeout_s
        self.handled = 0
        self.refused_frames = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        claim(self.path)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_FRAME + 4
            )
        except OSError as exc:
            raise EndpointError(f"cannot listen on {self.path}: {exc.strerror}") from None
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                event = decode(await _read_frame(reader))
            except (ValueError, msgspec.DecodeError, asyncio.IncompleteReadError, TimeoutError):
                self.refused_frames += 1
                return
            if not isinstance(event, Control):
                self.refused_frames += 1
                return
            reply = await exchange(self.bus, event, self.reply_timeout_s)
            self.handled += 1
            if reply is not None:
                writer.write(_frame(encode(reply)))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def send_local(path: Path, c: Control, timeout: float) -> ControlReply | None:
    """Send ``c`` to the endpoint at ``path``; its reply, or None if the
    process answered nothing within ``timeout``."""
    _check_path(path)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 5.0)
    except FileNotFoundError:
        raise EndpointError(
            f"no control socket at {path}: is tradewind trade running "
            "(its --control-socket, default beside --db)?"
        ) from None
    except (OSError, TimeoutError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "timed out"
        raise EndpointError(f"cannot reach the control socket {path}: {why}") from None
    try:
        writer.write(_frame(encode(c)))
        await writer.drain()
        try:
            data = await asyncio.wait_for(_read_frame_any(reader), timeout)
        except (asyncio.IncompleteReadError, TimeoutError):
            return None
        if data is None:
            return None
        reply = decode(data)
        if not isinstance(reply, ControlReply) or reply.request_id != c.id:
            raise EndpointError(f"the control socket {path} answered something else")
        return reply
    except (msgspec.DecodeError, ValueError) as exc:
        raise EndpointError(f"bad reply from the control socket {path}: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _read_frame_any(reader: asyncio.StreamReader) -> bytes | None:
    head = await reader.read(4)
    if not head:
        return None
    if len(head) < 4:
        head += await reader.readexactly(4 - len(head))
    size = int.from_bytes(head, "big")
    if not 0 < size <= MAX_FRAME:
        raise ValueError(f"frame of {size} bytes (at most {MAX_FRAME})")
    return await reader.readexactly(size)
