"""The kill switch inside one ``tradewind trade`` process: ``tradewind halt /
resume / status`` over the process's control socket, with the same signed
commands risk verifies in distributed mode, and the dashboard's keys in a
pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import spawned
from tests.e2e.test_trade import (
    ANSI,
    env_for,
    fake_exchange,
    fills_in,
    trade_args,
    trade_in_pty,
    wait_for,
)
from tradewind.control import make_control
from tradewind.runtime.control_endpoint import send_local, token_file

pytestmark = pytest.mark.slow


async def ctl(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tradewind",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql).fetchall())


def left_beside(db: Path) -> list[str]:
    return sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name + "."))


def refused(db: Path) -> int:
    sql = "SELECT count(*) FROM risk_decisions WHERE reason = 'trading_halted'"
    return int(str(_rows(db, sql)[0][0]))


def approved(db: Path) -> int:
    return int(str(_rows(db, "SELECT count(*) FROM risk_decisions WHERE approved")[0][0]))


async def test_halt_flatten_and_resume_over_the_control_socket(tmp_path: Path) -> None:
    db = tmp_path / "ctl.db"
    async with fake_exchange(speed=5) as fake:
        env = env_for(fake)
        async with spawned(
            *trade_args(db, "--no-dashboard", "--status-every", "0.3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        ) as proc:
            # The feed is held while each command is on its way, so the
            # recording cannot run out between the halt and the resume.
            await wait_for(lambda: fills_in(db) >= 1, 60)
            fake.pause()
            assert oct(token_file(db).stat().st_mode & 0o777) == "0o600"

            rc, out, err = await ctl(env, tmp_path, "halt", "--flatten", "--db", str(db), "--json")
            assert rc == 0, err
            halted = json.loads(out)
            assert halted["ok"] and halted["state"] == "halted", halted
            assert "halted;" in halted["detail"]
            rc, out, err = await ctl(env, tmp_path, "status", "--db", str(db), "--json")
            assert rc == 0 and json.loads(out)["state"] == "halted", err

            # While halted, risk refuses every new order.
            fake.resume()
            await wait_for(lambda: refused(db) >= 1, 60)
            fake.pause()

            # A command signed with another token is refused by risk and changes nothing.
            forged = make_control("f" * 64, "resume", {}, time.time_ns())
            reply = await send_local(Path(str(db) + ".sock"), forged, 10)
            assert reply is not None and not reply.ok
            assert reply.detail == "refused: bad_signature"
            assert reply.payload == {}

            rc, out, err = await ctl(env, tmp_path, "resume", "--db", str(db), "--json")
            assert rc == 0, err
            assert json.loads(out)["state"] == "active"
            approved_then = approved(db)
            fake.resume()
            await wait_for(lambda: approved(db) > approved_then, 60)
            await fake.wait_done(timeout=120)
            await asyncio.sleep(1)
            proc.send_signal(signal.SIGINT)
            stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    text = stdout.decode()
    assert "state=halted" in text and "state=active" in text
    commands = _rows(
        db, "SELECT command, args FROM control_events WHERE command != 'applied' ORDER BY ts_event"
    )
    # Every command is kept, the forged one too (risk refused it).
    assert [c[0] for c in commands] == ["halt", "status", "resume", "resume"], commands
    # The socket goes with the process; the token stays with the database.
    assert left_beside(db) == [db.name + ".control-token"]

    rc, _out, err = await ctl(env_for(fake), tmp_path, "status", "--db", str(db))
    assert rc == 1
    assert err.strip().splitlines() == [
        f"tradewind: no control socket at {db}.sock: is tradewind trade running "
        "(its --control-socket, default beside --db)?"
    ]


async def test_dashboard_keys_halt_and_resume_in_a_pty(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    out = bytearray()
    async with (
        fake_exchange(speed=5) as fake,
        trade_in_pty(db, fake, tmp_path) as (proc, master),
    ):

        async def until(needle: bytes, timeout: float) -> None:
            start = len(out)
            async with asyncio.timeout(timeout):
                while needle not in ANSI.sub(b"", bytes(out[start:])):
                    with contextlib.suppress(BlockingIOError, OSError):
                        out.extend(os.read(master, 65536))
                    await asyncio.sleep(0.05)

        await until(b"ACTIVE", 60)
        os.write(master, b"h")
        await until(b"halt: halted;", 30)
        await until(b"HALTED", 10)
        os.write(master, b"r")
        await until(b"resume: resumed; trading is active", 30)
        await until(b"ACTIVE", 10)
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 60)
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(master, 65536):
                out.extend(chunk)
    assert proc.returncode == 0, ANSI.sub(b"", bytes(out[-2000:])).decode(errors="replace")
