"""Layer contracts of ``src/tradewind``, read from the source (AST, every import
including those inside functions and under ``TYPE_CHECKING``).

Packages in layers, lowest first; a package imports only from its own layer or
lower ones, and the packages of one layer form no cycle:

0. ground floor: ``config``, ``events``, ``topics``, ``acl``, ``clock``,
   ``instruments``, ``control``, ``observability``, ``bus``
1. ``portfolio``, ``strategies``, ``storage``
2. ``execution`` (order state, outbox, router, ``paper/``), ``risk``
3. ``exchanges`` (venues implement ``execution``'s venue interface)
4. ``services``
5. ``runtime`` (the one place that wires services)
6. ``backtest``
7. ``cli``, then ``__main__``

Inside ``exchanges``: ``common`` knows no venue; a venue folder imports only
itself and ``common``; the registries (``formats``, ``feeds``, ``replay``,
``csv_source``, ``fake``, ``instruments``) sit above the venues. Only ``services`` and ``runtime``
import the services (others may subclass ``services.base``). No module-level
import cycle at run time: ``TYPE_CHECKING`` imports are left out of that one,
and so is a submodule importing its own package's ``__init__``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tradewind"

LAYERS: list[set[str]] = [
    {
        "config",
        "events",
        "topics",
        "acl",
        "clock",
        "instruments",
        "control",
        "observability",
        "bus",
    },
    {"portfolio", "strategies", "storage"},
    {"execution", "risk"},
    {"exchanges"},
    {"services"},
    {"runtime"},
    {"backtest"},
    {"cli"},
    {"__main__"},
]
VENUES = {"binance", "coinbase", "kraken", "bybit", "okx", "ccxt"}
EXCHANGE_REGISTRIES = {"formats", "feeds", "replay", "csv_source", "fake", "instruments"}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    typing_only: bool


def _modules(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _typing_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def edges(root: Path) -> Iterator[Edge]:
    """Every import of one module of the package by another."""
    mods = _modules(root)
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing = _typing_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if t in mods and t != name:
                    yield Edge(name, t, node.lineno in typing)


def package(module: str) -> str:
    """The top-level package (or module) of ``tradewind`` a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(pkg: str) -> int:
    for i, layer in enumerate(LAYERS):
        if pkg in layer:
            return i
    raise AssertionError(f"tradewind.{pkg} is in no layer: add it to LAYERS")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def violations(root: Path) -> list[str]:
    """Every broken contract, one line each."""
    out: list[str] = []
    all_edges = list(edges(root))
    pkg_graph: dict[str, set[str]] = defaultdict(set)
    mod_graph: dict[str, set[str]] = defaultdict(set)
    for e in all_edges:
        a, b = package(e.src), package(e.dst)
        if a and b and a != b:
            pkg_graph[a].add(b)
            if _rank(b) > _rank(a):
                out.append(f"upward import: {e.src} -> {e.dst}")
        if a == "execution" and b == "exchanges":
            out.append(f"execution imports exchanges: {e.src} -> {e.dst}")
        if (
            b == "services"
            and e.dst != "tradewind.services.base"
            and a not in ("services", "runtime")
        ):
            out.append(f"services wired outside runtime: {e.src} -> {e.dst}")
        if a == b == "exchanges":
            out.extend(_exchange_rule(e))
        if not e.typing_only and not e.src.startswith(e.dst + "."):
            mod_graph[e.src].add(e.dst)
    out.extend(f"package cycle: {' <-> '.join(c)}" for c in _cycles(pkg_graph))
    out.extend(f"module cycle: {' <-> '.join(c)}" for c in _cycles(mod_graph))
    return out


def _exchange_rule(e: Edge) -> list[str]:
    src = e.src.split(".")[2:3]
    dst = e.dst.split(".")[2:3]
    if not src or not dst or src == dst:
        return []
    s, d = src[0], dst[0]
    if s == "common":
        return [f"exchanges.common imports a venue or registry: {e.src} -> {e.dst}"]
    if s in VENUES and d != "common":
        return [f"venue imports beyond itself and common: {e.src} -> {e.dst}"]
    if s not in VENUES | EXCHANGE_REGISTRIES | {"common"}:
        return [f"exchanges.{s} is neither common, a venue nor a registry"]
    return []


def test_source_keeps_the_layer_contracts() -> None:
    assert violations(SRC) == []


def test_every_package_has_a_layer() -> None:
    packages = {package(m) for m in _modules(SRC)} - {""}
    for p in packages:
        _rank(p)


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "tradewind"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return pkg


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"events.py": "from tradewind.cli import app\n", "cli/__init__.py": ""},
            "upward import: tradewind.events -> tradewind.cli",
        ),
        (
            {
                "execution/__init__.py": "",
                "execution/x.py": "def f():\n    from tradewind.exchanges import y\n",
                "exchanges/__init__.py": "",
                "exchanges/y.py": "",
            },
            "execution imports exchanges: tradewind.execution.x -> tradewind.exchanges.y",
        ),
        (
            {
                "exchanges/__init__.py": "",
                "exchanges/formats.py": "from tradewind.exchanges.replay import r\n",
                "exchanges/replay.py": "from tradewind.exchanges.formats import f\n",
            },
            "module cycle: tradewind.exchanges.formats <-> tradewind.exchanges.replay",
        ),
        (
            {
                "backtest/__init__.py": "",
                "backtest/x.py": "from tradewind.services.signal import S\n",
                "services/__init__.py": "",
                "services/signal.py": "",
            },
            "services wired outside runtime: tradewind.backtest.x -> tradewind.services.signal",
        ),
        (
            {
                "exchanges/__init__.py": "",
                "exchanges/bybit/__init__.py": "",
                "exchanges/bybit/fake.py": "from tradewind.exchanges.binance import fake\n",
                "exchanges/binance/__init__.py": "",
                "exchanges/binance/fake.py": "",
            },
            "venue imports beyond itself and common: "
            "tradewind.exchanges.bybit.fake -> tradewind.exchanges.binance",
        ),
        (
            {
                "storage/__init__.py": "from tradewind.risk import r\n",
                "risk/__init__.py": "from tradewind.portfolio import p\n",
                "portfolio.py": "from tradewind.storage import s\n",
            },
            "package cycle: portfolio <-> risk <-> storage",
        ),
    ],
)
def test_a_planted_violation_is_caught(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    assert expected in violations(_tree(tmp_path, files))
