"""The ``runs`` table of an embedded (SQLite) database: what each run into it
read, did and added, under its run id.

Rows of events keep their deterministic ids (a rerun of the same data adds
nothing), so a run records the rows it added per table next to its summary.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    command: str
    started_ns: int
    finished_ns: int
    strategy: str
    params: dict[str, Any]
    data: list[dict[str, Any]]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "command": self.command,
            "started": _iso(self.started_ns),
            "finished": _iso(self.finished_ns),
            "strategy": self.strategy,
            "params": self.params,
            "data": self.data,
            "summary": self.summary,
        }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def new_run_id(now_ns: int | None = None) -> str:
    """Sortable by start time, unique without coordination."""
    ns = time.time_ns() if now_ns is None else now_ns
    stamp = datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def record(path: Path, rec: RunRecord) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, command, started_ns, finished_ns, strategy, params, "
            "data, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.run_id,
                rec.command,
                rec.started_ns,
                rec.finished_ns,
                rec.strategy,
                json.dumps(rec.params, sort_keys=True, default=str),
                json.dumps(rec.data, default=str),
                json.dumps(rec.summary, sort_keys=True, default=str),
            ),
        )
    conn.close()


def _row(r: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=r[0],
        command=r[1],
        started_ns=r[2],
        finished_ns=r[3],
        strategy=r[4],
        params=json.loads(r[5]),
        data=json.loads(r[6]),
        summary=json.loads(r[7]),
    )


_SELECT = (
    "SELECT run_id, command, started_ns, finished_ns, strategy, params, data, summary FROM runs"
)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def list_runs(path: Path) -> list[RunRecord]:
    conn = _connect(path)
    try:
        return [_row(r) for r in conn.execute(f"{_SELECT} ORDER BY started_ns, run_id")]
    finally:
        conn.close()


def find_run(path: Path, run_id: str) -> RunRecord | None:
    """By its id or a unique prefix of it."""
    conn = _connect(path)
    try:
        rows = conn.execute(f"{_SELECT} WHERE run_id LIKE ? ORDER BY run_id", (run_id + "%",))
        found = [_row(r) for r in rows]
    finally:
        conn.close()
    exact = [r for r in found if r.run_id == run_id]
    if exact:
        return exact[0]
    return found[0] if len(found) == 1 else None
