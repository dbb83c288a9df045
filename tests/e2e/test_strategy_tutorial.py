"""The README's strategy tutorial as a tested document: its code block is the
shipped example (and the one docs/strategies.md shows), and its commands,
run as written on the shipped data, make signals and fills; an installed
plug-in is found through the ``tradewind.strategies`` entry-point group."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from tests.conftest import MARKET_DATA, ROOT, market_file
from tests.e2e.test_cli_matrix import tradewind_exe

EXAMPLE = ROOT / "docs" / "examples" / "breakout.py"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    return text[start : nxt if nxt >= 0 else None]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[list[str]]:
    joined = block.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def _metric(out: str, name: str) -> int:
    m = re.search(rf"│ {name}\s+│\s+([\d,]+)", out)
    assert m, f"{name} not in:\n{out}"
    return int(m.group(1).replace(",", ""))


def test_readme_and_docs_show_the_shipped_example() -> None:
    code = EXAMPLE.read_text()
    readme = _section((ROOT / "README.md").read_text(), "## Writing a strategy")
    docs = _section((ROOT / "docs" / "strategies.md").read_text(), "## A complete example")
    assert _blocks(readme, "python")[0] == code
    assert _blocks(docs, "python")[0] == code


def test_readme_commands_make_signals_and_fills(tmp_path: Path) -> None:
    market_file("binance_spot_btcusdt_1d_2020.csv")  # skips (or fails in CI) without data
    readme = _section((ROOT / "README.md").read_text(), "## Writing a strategy")
    (tmp_path / "docs" / "examples").mkdir(parents=True)
    (tmp_path / "docs" / "examples" / "breakout.py").write_text(_blocks(readme, "python")[0])
    commands = _commands(_blocks(readme, "bash")[0])
    assert [c[1] for c in commands] == ["run", "backtest"]
    env = {**os.environ, "COLUMNS": "200"}
    outputs = []
    for cmd in commands:
        assert cmd[0] == ".venv/bin/tradewind"
        args = [a.replace("tests/data/market", str(MARKET_DATA)) for a in cmd[1:]]
        res = subprocess.run(
            [tradewind_exe(), *args, "-q"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        outputs.append(res.stdout)
    assert _metric(outputs[0], "signals") > 0
    assert _metric(outputs[0], "fills") > 0
    result = json.loads((tmp_path / "breakout-out" / "result.json").read_text())
    assert result["metrics"]["signals"] > 0
    assert result["metrics"]["fills"] > 0
    assert result["metrics"]["trades"] > 0


def test_an_installed_plugin_is_listed_and_runs(tmp_path: Path) -> None:
    pkg = tmp_path / "site"
    (pkg / "twplug").mkdir(parents=True)
    (pkg / "twplug" / "__init__.py").write_text("")
    (pkg / "twplug" / "breakout.py").write_text(EXAMPLE.read_text())
    dist = pkg / "twplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: twplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tradewind.strategies]\nplugged = twplug.breakout:Breakout\n"
    )
    env = {**os.environ, "PYTHONPATH": str(pkg), "COLUMNS": "200"}
    res = subprocess.run(
        [tradewind_exe(), "strategies", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert {"ema_cross", "zscore", "imbalance", "plugged"} <= set(rows)
    lookback = next(p for p in rows["plugged"]["params"] if p["name"] == "lookback")
    assert lookback["default"] == 20 and lookback["bounds"] == ">= 2"
    res = subprocess.run(
        [tradewind_exe(), "run", "-q", "-s", "plugged", "-p", "lookback=10", "--db", "p.db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert _metric(res.stdout, "fills") > 0
