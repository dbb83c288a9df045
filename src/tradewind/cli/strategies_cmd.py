"""``tradewind strategies``: what can be named with ``--strategy``, with each
strategy's parameters, defaults and bounds, read from its ``Params`` model."""

from __future__ import annotations

import json
from typing import Any

import typer
from annotated_types import Ge, Gt, Le, Lt
from rich.console import Console
from rich.table import Table

from tradewind.cli import app
from tradewind.cli.errors import UsageProblem, one_line_errors
from tradewind.strategies import STRATEGIES, Strategy, strategy_class
from tradewind.strategies.loader import plugin_names

_BOUNDS = ((Ge, "ge", ">="), (Gt, "gt", ">"), (Le, "le", "<="), (Lt, "lt", "<"))


def describe(cls: type[Strategy]) -> list[dict[str, Any]]:
    """One entry per parameter: name, type, default, bounds."""
    out: list[dict[str, Any]] = []
    for name, f in cls.Params.model_fields.items():
        bounds: list[str] = []
        for m in f.metadata:
            for kind, attr, sign in _BOUNDS:
                if isinstance(m, kind):
                    bounds.append(f"{sign} {getattr(m, attr)}")
        ann = f.annotation
        type_name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        default = f.get_default(call_default_factory=True)
        out.append(
            {
                "name": name,
                "type": type_name,
                "default": default if isinstance(default, int | float | bool) else str(default),
                "bounds": ", ".join(bounds),
                "help": f.description or "",
            }
        )
    return out


def catalogue(extra: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, cls in sorted(STRATEGIES.items()):
        rows.append({"name": name, "source": "built-in", "params": describe(cls), "doc": cls})
    for name, target in sorted(plugin_names().items()):
        if name in STRATEGIES:
            continue
        try:
            cls = strategy_class(name)
        except ValueError as exc:
            rows.append({"name": name, "source": f"plug-in {target}", "error": str(exc)})
            continue
        source = f"plug-in {target}"
        rows.append({"name": name, "source": source, "params": describe(cls), "doc": cls})
    for ref in extra:
        try:
            cls = strategy_class(ref)
        except ValueError as exc:
            raise UsageProblem(f"--strategy {ref}: {exc}") from None
        rows.append({"name": ref, "source": "reference", "params": describe(cls), "doc": cls})
    for r in rows:
        cls = r.pop("doc", None)
        doc = (cls.__doc__ or "").strip().splitlines() if cls is not None else []
        r["summary"] = doc[0] if doc else ""
    return rows


@app.command("strategies")
@one_line_errors
def strategies_command(
    strategy: list[str] = typer.Option(  # noqa: B008
        [],
        "--strategy",
        "-s",
        metavar="FILE.py:CLASS|MODULE:CLASS",
        help="Also describe these strategies by reference (repeatable).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List built-in and plug-in strategies with their parameters, defaults and bounds."""
    rows = catalogue(list(strategy))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    console = Console()
    for r in rows:
        title = f"{r['name']} ({r['source']})"
        if "error" in r:
            console.print(f"{title}: {r['error']}", highlight=False)
            continue
        t = Table(title=title, caption=r["summary"] or None, header_style="bold")
        for col in ("parameter", "type", "default", "bounds"):
            t.add_column(col)
        for p in r["params"]:
            t.add_row(p["name"], p["type"], str(p["default"]), p["bounds"])
        console.print(t)
    console.print(
        "Plug-ins: an entry point in the group 'tradewind.strategies'; or name a class with "
        "--strategy path/to/file.py:ClassName or package.module:ClassName.",
        highlight=False,
    )
