"""Bad input to the real ``tradewind`` executable: one line, the right exit status.

Each case runs the installed console script in a fresh folder and asserts
the exit status (2: arguments, files, settings; 1: a run that failed), that
stderr is exactly one line ``tradewind: ...`` naming the offending flag, file
or setting, with no traceback, and that a refused or failed run left no file
behind (the folder holds exactly what the case put there).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import market_file

TRADES = "binance_spot_btcusdt_trades_20240808.jsonl"
DAILY = "binance_spot_btcusdt_1d_2020.csv"

Setup = Callable[[Path], None]


def tradewind_exe() -> str:
    exe = Path(sys.executable).with_name("tradewind")
    if exe.is_file():
        return str(exe)
    found = shutil.which("tradewind")
    if found is None:
        pytest.fail("the tradewind console script is not installed (pip install -e .)")
    return found


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    names: list[str]
    """Substrings (any case) the one stderr line must contain."""
    env: dict[str, str] = field(default_factory=dict)
    setup: Setup | None = None


def _write(name: str, data: bytes) -> Setup:
    def make(d: Path) -> None:
        (d / name).write_bytes(data)

    return make


def _both(*fns: Setup) -> Setup:
    def make(d: Path) -> None:
        for f in fns:
            f(d)

    return make


def _mkdir(name: str) -> Setup:
    def make(d: Path) -> None:
        (d / name).mkdir(parents=True)

    return make


def _copy(src: str, name: str) -> Setup:
    def make(d: Path) -> None:
        shutil.copy(market_file(src), d / name)

    return make


def _refusing_db(name: str) -> Setup:
    """A SQLite database whose every insert fails, as a read-only file does
    (chmod cannot make one for root, who runs CI)."""

    def make(d: Path) -> None:
        from tradewind.storage import migrate

        path = d / name
        migrate.upgrade(f"sqlite:///{path}")
        conn = sqlite3.connect(path)
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        assert "trades" in tables
        for t in tables:
            if t != "alembic_version":
                conn.execute(
                    f"create trigger ro_{t} before insert on {t} "
                    "begin select raise(abort, 'attempt to write a readonly database'); end"
                )
        conn.commit()
        conn.close()

    return make


BOOM = b"""
from tradewind.strategies.base import Strategy, StrategyParams


class Boom(Strategy):
    name = "boom"
    Params = StrategyParams

    def on_bar(self, bar):
        raise ZeroDivisionError("boom")
"""

WRONG_SHAPE = b'{"hello": "world"}\n{"hello": "again"}\n'
MISSING_COLS = b"datetime,open,high\n2020-01-01 00:00:00,1,2\n2020-01-02 00:00:00,1,2\n"
BASANA_NO_SYMBOL = b"datetime,open,high,low,close,volume\n2020-01-01 00:00:00,1,2,0.5,1.5,10\n"

_RUN = ["run", "-q"]
_BT = ["backtest", "-q"]
_DB = ["--db", "out.db"]

CASES: list[Case] = [
    # --- run: data files -------------------------------------------------------
    Case(
        "run-empty",
        [*_RUN, "--data", "e.jsonl", *_DB],
        2,
        ["e.jsonl", "empty"],
        setup=_write("e.jsonl", b""),
    ),
    Case(
        "run-blank-lines",
        [*_RUN, "--data", "b.jsonl", *_DB],
        2,
        ["b.jsonl", "empty"],
        setup=_write("b.jsonl", b"\n\n  \n"),
    ),
    Case(
        "run-binary",
        [*_RUN, "--data", "x.bin", *_DB],
        2,
        ["x.bin", "binary"],
        setup=_write("x.bin", bytes(range(256)) * 8),
    ),
    Case(
        "run-json-wrong-shape",
        [*_RUN, "--data", "w.jsonl", *_DB],
        2,
        ["w.jsonl", "format"],
        setup=_write("w.jsonl", WRONG_SHAPE),
    ),
    Case(
        "run-csv-missing-columns",
        [*_RUN, "--data", "btcusdt_1d.csv", *_DB],
        2,
        ["btcusdt_1d.csv"],
        setup=_write("btcusdt_1d.csv", MISSING_COLS),
    ),
    Case("run-missing-file", [*_RUN, "--data", "nope.jsonl", *_DB], 2, ["nope.jsonl"]),
    Case(
        "run-data-folder",
        [*_RUN, "--data", "adir", *_DB],
        2,
        ["adir", "folder"],
        setup=_mkdir("adir"),
    ),
    Case("run-format-unknown", [*_RUN, "--format", "nope", *_DB], 2, ["--format", "nope"]),
    Case(
        "run-format-mismatch",
        [*_RUN, "--data", "t.jsonl", "--format", "kraken", *_DB],
        2,
        ["t.jsonl", "kraken"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "run-basana-no-symbol",
        [*_RUN, "--data", "bars.csv", *_DB],
        2,
        ["bars.csv", "--symbol"],
        setup=_write("bars.csv", BASANA_NO_SYMBOL),
    ),
    # --- run: database path ------------------------------------------------------
    Case("run-db-folder", [*_RUN, "--db", "dbdir"], 2, ["dbdir", "folder"], setup=_mkdir("dbdir")),
    Case(
        "run-db-missing-parent", [*_RUN, "--db", "no/such/dir/x.db"], 2, ["--db", "does not exist"]
    ),
    Case(
        "run-db-parent-is-file",
        [*_RUN, "--db", "f.txt/x.db"],
        2,
        ["--db", "not a folder"],
        setup=_write("f.txt", b"x"),
    ),
    Case(
        "run-db-not-sqlite",
        [*_RUN, "--db", "notes.txt"],
        2,
        ["notes.txt", "sqlite"],
        setup=_write("notes.txt", b"hello, not a database\n"),
    ),
    Case(
        "run-db-refuses-writes",
        [*_RUN, "--db", "ro.db"],
        1,
        ["ro.db", "refuses writes"],
        setup=_refusing_db("ro.db"),
    ),
    # --- run: numbers, strategy, parameters ------------------------------------------
    Case("run-speed-zero", [*_RUN, "--speed", "0", *_DB], 2, ["--speed"]),
    Case("run-speed-negative", [*_RUN, "--speed", "-1", *_DB], 2, ["--speed"]),
    Case("run-speed-word", [*_RUN, "--speed", "fast", *_DB], 2, ["--speed"]),
    Case("run-bar-interval-negative", [*_RUN, "--bar-interval", "-1", *_DB], 2, ["--bar-interval"]),
    Case("run-bar-interval-zero", [*_RUN, "--bar-interval", "0", *_DB], 2, ["--bar-interval"]),
    Case("run-fast-not-below-slow", [*_RUN, "--fast", "30", "--slow", "5", *_DB], 2, ["fast"]),
    Case("run-fast-word", [*_RUN, "--fast", "abc", *_DB], 2, ["--fast"]),
    Case("run-quantity-negative", [*_RUN, "--quantity", "-1", *_DB], 2, ["--quantity"]),
    Case("run-unknown-param", [*_RUN, "-p", "bogus=1", *_DB], 2, ["bogus"]),
    Case("run-param-no-value", [*_RUN, "-p", "fast", *_DB], 2, ["--param", "KEY=VALUE"]),
    Case("run-unknown-strategy", [*_RUN, "-s", "nope", *_DB], 2, ["nope", "unknown strategy"]),
    Case("run-strategy-missing-file", [*_RUN, "-s", "gone.py:X", *_DB], 2, ["gone.py"]),
    Case(
        "run-strategy-missing-class",
        [*_RUN, "-s", "boom.py:Nope", *_DB],
        2,
        ["Nope"],
        setup=_write("boom.py", BOOM),
    ),
    Case(
        "run-strategy-bad-module",
        [*_RUN, "-s", "no_such_mod_xyz:Cls", *_DB],
        2,
        ["no_such_mod_xyz"],
    ),
    Case(
        "run-strategy-raises",
        [*_RUN, "-s", "boom.py:Boom", *_DB],
        1,
        ["boom.py:Boom", "ZeroDivisionError"],
        setup=_write("boom.py", BOOM),
    ),
    Case("run-set-no-dot", [*_RUN, "--set", "max_position=1", *_DB], 2, ["--set"]),
    Case("run-set-bad-value", [*_RUN, "--set", "risk.max_position=abc", *_DB], 2, ["max_position"]),
    Case("run-set-unknown-section", [*_RUN, "--set", "nosuch.key=1", *_DB], 2, ["nosuch"]),
    Case("run-unknown-option", [*_RUN, "--bogus", *_DB], 2, ["--bogus"]),
    # --- settings from the environment -------------------------------------------------
    Case(
        "env-section-not-a-dict",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_RISK"],
        env={"TRADEWIND_RISK": "notadict"},
    ),
    Case(
        "env-dict-bad-json",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_FEED__WS_URLS"],
        env={"TRADEWIND_FEED__WS_URLS": "{bad"},
    ),
    Case(
        "env-bus-kind",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_BUS__KIND"],
        env={"TRADEWIND_BUS__KIND": "kafka"},
    ),
    Case(
        "env-store-url",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_STORE__URL"],
        env={"TRADEWIND_STORE__URL": "foo://x"},
    ),
    Case(
        "env-negative-limit",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_RISK__MAX_POSITION"],
        env={"TRADEWIND_RISK__MAX_POSITION": "-1"},
    ),
    Case(
        "env-config-binary",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_CONFIG"],
        env={"TRADEWIND_CONFIG": "c.yaml"},
        setup=_write("c.yaml", bytes(range(256))),
    ),
    Case(
        "env-config-missing",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_CONFIG"],
        env={"TRADEWIND_CONFIG": "missing.yaml"},
    ),
    Case(
        "env-config-not-mapping",
        [*_RUN, *_DB],
        2,
        ["TRADEWIND_CONFIG"],
        env={"TRADEWIND_CONFIG": "l.yaml"},
        setup=_write("l.yaml", b"- a\n- b\n"),
    ),
    # --- backtest ------------------------------------------------------------------------
    Case("bt-no-data", [*_BT], 2, ["--data"]),
    Case("bt-empty", [*_BT, "-d", "e.csv"], 2, ["e.csv", "empty"], setup=_write("e.csv", b"")),
    Case(
        "bt-binary",
        [*_BT, "-d", "x.bin"],
        2,
        ["x.bin", "binary"],
        setup=_write("x.bin", bytes(range(256)) * 8),
    ),
    Case(
        "bt-json-wrong-shape",
        [*_BT, "-d", "w.jsonl"],
        2,
        ["w.jsonl"],
        setup=_write("w.jsonl", WRONG_SHAPE),
    ),
    Case(
        "bt-csv-missing-columns",
        [*_BT, "-d", "btcusdt_1d.csv"],
        2,
        ["btcusdt_1d.csv"],
        setup=_write("btcusdt_1d.csv", MISSING_COLS),
    ),
    Case(
        "bt-format-unknown",
        [*_BT, "-d", "d.csv", "--format", "nope"],
        2,
        ["--format"],
        setup=_copy(DAILY, "d.csv"),
    ),
    Case(
        "bt-format-mismatch",
        [*_BT, "-d", "t.jsonl", "--format", "kraken"],
        2,
        ["kraken"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-bar-length-negative",
        [*_BT, "-d", "t.jsonl", "--bar-length", "-5"],
        2,
        ["--bar-interval"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-period-negative",
        [*_BT, "-d", "t.jsonl", "--period", "-1"],
        2,
        ["--period"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-capital-zero",
        [*_BT, "-d", "t.jsonl", "--capital", "0"],
        2,
        ["--capital"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-capital-word",
        [*_BT, "-d", "t.jsonl", "--capital", "lots"],
        2,
        ["--capital"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-grid-not-numbers",
        [*_BT, "-d", "t.jsonl", "--grid", "fast=a,b"],
        2,
        ["--grid", "fast"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-grid-no-values",
        [*_BT, "-d", "t.jsonl", "--grid", "fast"],
        2,
        ["--grid"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-grid-inconsistent",
        [*_BT, "-d", "t.jsonl", "--grid", "fast=3,20"],
        2,
        ["fast=20", "fast must be shorter than slow"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-out-is-file",
        [*_BT, "-d", "t.jsonl", "-o", "f.txt"],
        2,
        ["--out", "f.txt"],
        setup=_both(_copy(TRADES, "t.jsonl"), _write("f.txt", b"x")),
    ),
    Case(
        "bt-out-missing-parent",
        [*_BT, "-d", "t.jsonl", "-o", "no/such/out"],
        2,
        ["--out", "does not exist"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-db-folder",
        [*_BT, "-d", "t.jsonl", "--db", "dbdir"],
        2,
        ["--db", "folder"],
        setup=_both(_copy(TRADES, "t.jsonl"), _mkdir("dbdir")),
    ),
    Case(
        "bt-db-missing-parent",
        [*_BT, "-d", "t.jsonl", "--db", "no/dir/x.db"],
        2,
        ["--db"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-workers-zero",
        [*_BT, "-d", "t.jsonl", "--workers", "0"],
        2,
        ["--workers"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-unknown-strategy",
        [*_BT, "-d", "t.jsonl", "-s", "nope"],
        2,
        ["nope"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-fast-not-below-slow",
        [*_BT, "-d", "t.jsonl", "-p", "fast=20"],
        2,
        ["fast"],
        setup=_copy(TRADES, "t.jsonl"),
    ),
    Case(
        "bt-bar-param-on-bars",
        [*_BT, "-d", "d_btcusdt_1d.csv", "-p", "bar_interval_s=60"],
        2,
        ["bar_interval_s"],
        setup=_copy(DAILY, "d_btcusdt_1d.csv"),
    ),
    Case(
        "bt-strategy-raises",
        [*_BT, "-d", "t.jsonl", "-s", "boom.py:Boom", "-o", "o"],
        1,
        ["boom.py:Boom", "ZeroDivisionError"],
        setup=_both(_copy(TRADES, "t.jsonl"), _write("boom.py", BOOM)),
    ),
    # --- other commands ------------------------------------------------------------------
    Case("unknown-command", ["bogus"], 2, ["bogus"]),
    Case("runs-no-db", ["runs", "--db", "none.db"], 2, ["--db", "none.db"]),
    Case(
        "runs-not-a-db", ["runs", "--db", "n.txt"], 2, ["n.txt"], setup=_write("n.txt", b"x" * 200)
    ),
    Case(
        "show-unknown-run",
        ["show", "nope", "--db", "ro.db"],
        2,
        ["nope"],
        setup=_refusing_db("ro.db"),
    ),
    # A PostgreSQL URL nothing answers at: one line, its password hidden.
    Case(
        "runs-postgres-unreachable",
        ["runs", "--db", "postgresql://u:secret@127.0.0.1:1/x"],
        1,
        ["--db", "u:***@127.0.0.1:1", "cannot read runs"],
    ),
    Case(
        "show-postgres-unreachable",
        ["show", "abc", "--db", "postgresql://u:secret@127.0.0.1:1/x", "--json"],
        1,
        ["--db", "u:***@127.0.0.1:1", "cannot read runs"],
    ),
    Case("strategies-bad-ref", ["strategies", "-s", "gone.py:X"], 2, ["gone.py"]),
    Case("service-unknown", ["service", "nope"], 2, ["nope"]),
    Case(
        "service-other-group",
        ["service", "signal,risk"],
        2,
        ["signal,risk", "signal,risk,execution"],
    ),
    Case(
        "service-group-without-order-key",
        ["service", "signal,risk,execution"],
        2,
        ["TRADEWIND_CONTROL__ORDER_KEY"],
        env={"TRADEWIND_BUS__KIND": "redis"},
    ),
    Case("status-no-token", ["status", "--timeout", "1"], 2, ["TRADEWIND_CONTROL__TOKEN"]),
]


@pytest.fixture
def busy_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def _listing(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_size for p in sorted(d.rglob("*"))}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRADEWIND_") or k.startswith("TRADEWIND_TEST")
    }
    full_env.update({"COLUMNS": "200", "TRADEWIND_SECRETS_DIR": str(cwd / "no-secrets")}, **env)
    return subprocess.run(
        [tradewind_exe(), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _check(res: subprocess.CompletedProcess[str], code: int, names: list[str]) -> None:
    err = res.stderr
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("tradewind: "), line
    assert res.returncode == code, f"exit {res.returncode}, expected {code}: {line}"
    for n in names:
        assert n.lower() in line.lower(), f"{n!r} not named in: {line}"


Outcome = tuple[dict[str, int], subprocess.CompletedProcess[str], dict[str, int]]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case run once, a few at a time: each is mostly the interpreter
    starting, so they overlap well."""

    def one(case: Case) -> tuple[str, Outcome]:
        d = tmp_path_factory.mktemp(case.id)
        if case.setup is not None:
            case.setup(d)
        before = _listing(d)
        res = _run(case.args, d, case.env)
        return case.id, (before, res, _listing(d))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    before, res, after = outcomes[case.id]
    _check(res, case.code, case.names)
    assert after == before, "a refused or failed run left files behind"


def test_port_in_use(tmp_path: Path, busy_port: int) -> None:
    res = _run(["fake-exchange", "--port", str(busy_port)], tmp_path, {})
    _check(res, 1, ["--port", str(busy_port)])
    env = {
        "TRADEWIND_BUS__KIND": "redis",
        "TRADEWIND_HTTP__PORT": str(busy_port),
        # Execution refuses to start without the order key before it binds.
        "TRADEWIND_CONTROL__ORDER_KEY": secrets.token_hex(32),
    }
    res = _run(["service", "execution", "--consumer", "m0"], tmp_path, env)
    _check(res, 1, ["TRADEWIND_HTTP__PORT", str(busy_port)])
    assert _listing(tmp_path) == {}


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = _run(["--debug", "run", "-q", "--speed", "0"], tmp_path, {})
    assert res.returncode != 0 and "Traceback" in res.stderr
    res = _run(["run", "-q", "--speed", "0"], tmp_path, {"TRADEWIND_DEBUG": "1"})
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_matrix_is_large_enough() -> None:
    assert len(CASES) + 2 >= 40
