"""Shared helpers for the deployment tests.

Tests that need an external tool (kubectl, promtool, shellcheck, docker-compose)
skip with the reason when it is missing, unless TRADEWIND_REQUIRE_SERVICES=1,
which turns the skip into a failure (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ws", "signal", "risk", "execution", "db_writer")
K8S_NAMES = {
    "ws": "ws",
    "signal": "signal",
    "risk": "risk",
    "execution": "execution",
    "db_writer": "db-writer",
}
DRAIN_TIMEOUT_S = 20


def require_tool(name: str) -> str:
    tools = ROOT / ".venv-tools" / "bin" / name
    path = shutil.which(name) or (str(tools) if os.access(tools, os.X_OK) else None)
    if path:
        return path
    reason = f"{name} is not installed (bash .ci/install_deploy_tools.sh)"
    if os.environ.get("TRADEWIND_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def renders() -> dict[str, list[dict[str, Any]]]:
    """Both kustomize overlays, rendered once."""
    kubectl = require_tool("kubectl")
    out = {}
    for overlay in ("dev", "prod"):
        proc = subprocess.run(
            [kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out[overlay] = load_yaml_docs(proc.stdout)
    return out


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())
