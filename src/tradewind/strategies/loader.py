"""Strategies from outside the package, by reference, so nobody edits it.

A strategy is named three ways:

- a built-in name (``ema_cross``) or the name of an installed plug-in: a
  distribution that declares an entry point in the group
  ``tradewind.strategies`` (``breakout = mypkg.breakout:Breakout``);
- ``package.module:ClassName``, imported from ``sys.path``;
- ``path/to/file.py:ClassName``, loaded from that file.

The reference string is what crosses process boundaries (sweep workers,
services), and each process resolves it the same way.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from tradewind.strategies.base import Strategy

ENTRY_POINT_GROUP = "tradewind.strategies"


def plugin_names() -> dict[str, str]:
    """Installed plug-ins: name → ``module:attr``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def is_reference(name: str) -> bool:
    return ":" in name


def _check(obj: Any, ref: str) -> type[Strategy]:
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ValueError(f"strategy {ref}: is not a subclass of tradewind.strategies.Strategy")
    if obj is Strategy:
        raise ValueError(f"strategy {ref}: name a subclass, not Strategy itself")
    return obj


def _from_file(path: Path, ref: str) -> Any:
    if not path.is_file():
        raise ValueError(f"strategy {ref}: no such file {path}")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    mod_name = f"tradewind_user_strategy_{resolved.stem}_{digest}"
    module = sys.modules.get(mod_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(mod_name, resolved)
        if spec is None or spec.loader is None:
            raise ValueError(f"strategy {ref}: {path} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ValueError(
                f"strategy {ref}: importing {path} failed: {type(exc).__name__}: {exc}"
            ) from exc
    return module


def load_reference(ref: str) -> type[Strategy]:
    """``file.py:Class`` or ``package.module:Class``; ValueError says what is wrong."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr or not attr.isidentifier():
        raise ValueError(
            f"strategy {ref!r}: expected path/to/file.py:ClassName or module:ClassName"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _from_file(Path(target), ref)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(f"strategy {ref}: cannot import {target}: {exc}") from exc
        except Exception as exc:
            raise ValueError(
                f"strategy {ref}: importing {target} failed: {type(exc).__name__}: {exc}"
            ) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise ValueError(f"strategy {ref}: {target} has no {attr}")
    return _check(obj, ref)


def load_plugin(name: str) -> type[Strategy] | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                obj = ep.load()
            except Exception as exc:
                raise ValueError(
                    f"strategy plug-in {name} ({ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            return _check(obj, f"{name} ({ep.value})")
    return None
