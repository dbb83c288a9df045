"""The PowerShell scripts against the bash ones, as far as this machine allows
(no PowerShell here): the kubectl call plan read from the parse tree equals
the bash call plan, and so do the options, the questions and the exit codes.
No kubectl call bypasses Invoke-Kubectl (so -Context reaches every call)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_k8s import _need_tree_sitter

PAIRS = [("deploy-k8s.sh", "deploy-k8s.ps1"), ("cleanup-k8s.sh", "cleanup-k8s.ps1")]
_CUT = re.compile(r'\)"|\s\|\||\s>|;\s*then|\s\\$|;$')


def bash_calls(path: Path, name: str, line_start: bool = False) -> list[list[str]]:
    """Arguments of every ``name ...`` call in a bash script, in source order."""
    calls = []
    lead = r"^\s*" if line_start else r"(?<![\w-])"
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in re.finditer(rf"{lead}{re.escape(name)} (.*)", line):
            rest = m.group(1)
            cut = _CUT.search(rest)
            calls.append(shlex.split(rest[: cut.start()] if cut else rest))
    return calls


def plan_sh(script: str) -> list[list[str]]:
    from .ps_parse import normalize

    return [[normalize(w) for w in c] for c in bash_calls(ROOT / "k8s" / script, "kc")]


def plan_ps(script: str) -> list[list[str]]:
    from .ps_parse import command_calls, normalize

    return [
        [normalize(w) for w in c] for c in command_calls(ROOT / "k8s" / script, "Invoke-Kubectl")
    ]


@pytest.mark.parametrize(("sh", "ps"), PAIRS)
def test_the_kubectl_call_plans_are_the_same(sh: str, ps: str) -> None:
    _need_tree_sitter()
    bash = plan_sh(sh)
    assert len(bash) >= 8
    assert plan_ps(ps) == bash


@pytest.mark.parametrize(("sh", "ps"), PAIRS)
def test_the_questions_are_the_same(sh: str, ps: str) -> None:
    _need_tree_sitter()
    from .ps_parse import command_calls, template

    def text(words: list[str]) -> str:
        return template(" ".join(words).strip("'\""))

    bash = [text(c) for c in bash_calls(ROOT / "k8s" / sh, "confirm", line_start=True)]
    pwsh = [text(c) for c in command_calls(ROOT / "k8s" / ps, "Confirm-Step")]
    assert bash and pwsh == bash
    assert all("on context $" in q for q in bash), bash


def _exit_codes(text: str, fail: str, usage: str) -> set[int]:
    codes = {int(c) for c in re.findall(r"\bexit (\d)\b", text)}
    codes |= {1} if re.search(rf"^\s*[^#\n]*\b{fail}\b", text, re.M) else set()
    codes |= {2} if re.search(rf"^\s*[^#\n]*\b{usage}\b \S", text, re.M) else set()
    return codes


@pytest.mark.parametrize(("sh", "ps"), PAIRS)
def test_options_and_exit_codes_are_the_same(sh: str, ps: str) -> None:
    bash = (ROOT / "k8s" / sh).read_text()
    pwsh = (ROOT / "k8s" / ps).read_text()
    options = set(re.findall(r"^\s+(?:-\w\|)?--([\w-]+)(?:\|-\w)?\)", bash, re.M)) - {"help"}
    pascal = {"".join(p.capitalize() for p in o.split("-")) for o in options}
    params = set(re.findall(r"^\s+\[(?:string|switch)\]\$(\w+)", pwsh, re.M))
    assert options and pascal == params
    assert "SupportsShouldProcess = $true, PositionalBinding = $false" in pwsh  # -WhatIf
    assert _exit_codes(bash, "die", "usage_error") == _exit_codes(
        pwsh, "Stop-WithError", "Stop-WithUsage"
    )


@pytest.mark.parametrize("ps", [p for _, p in PAIRS])
def test_no_kubectl_call_bypasses_invoke_kubectl(ps: str) -> None:
    text = (ROOT / "k8s" / ps).read_text()
    native = [line for line in text.splitlines() if re.search(r"&\s*kubectl\b", line)]
    assert native == ["    $all = @(& kubectl @kubectlArgs 2>&1)"]
    assert "$PSNativeCommandUseErrorActionPreference = $false" in text
    assert "$LASTEXITCODE" in text


@pytest.mark.parametrize("sh", [s for s, _ in PAIRS])
def test_no_kubectl_call_bypasses_kc(sh: str) -> None:
    code = [
        re.sub(r'"[^"]*"|\'[^\']*\'', '""', line)
        for line in (ROOT / "k8s" / sh).read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    calls = [line.strip() for line in code if re.search(r"\bkubectl\b", line)]
    assert calls == [
        'if [[ -n "" ]]; then kubectl --context "" ""; else kubectl ""; fi',
        'command -v kubectl >/dev/null 2>&1 || die ""',
    ]


def test_the_plan_reader_sees_a_difference(tmp_path: Path) -> None:
    _need_tree_sitter()
    from .ps_parse import command_calls

    f = tmp_path / "x.ps1"
    f.write_text("Invoke-Kubectl get pvc -o name\nInvoke-Kubectl delete pvc '--all'\n")
    assert command_calls(f, "Invoke-Kubectl") == [
        ["get", "pvc", "-o", "name"],
        ["delete", "pvc", "'--all'"],
    ]


def _message(text: str) -> str:
    """A message with variables as ``$`` and option spellings (--no-rollback,
    -NoRollback) reduced to one word, lower case."""
    from .ps_parse import template

    text = template(text.strip("'\""))
    return re.sub(
        r"(?<![\w-])--?([a-zA-Z][\w-]*)", lambda m: m.group(1).replace("-", ""), text
    ).lower()


@pytest.mark.parametrize(("sh", "ps"), PAIRS)
def test_the_error_messages_are_the_same(sh: str, ps: str) -> None:
    _need_tree_sitter()
    from .ps_parse import command_calls

    bash = (ROOT / "k8s" / sh).read_text()
    for sh_fn, ps_fn in (("die", "Stop-WithError"), ("usage_error", "Stop-WithUsage")):
        # "--x needs a value": PowerShell's own parameter binder says it, before the script.
        b = sorted(
            {_message(m) for m in re.findall(rf'\b{sh_fn} ("[^"]*")', bash)}
            - {
                _message(f"{o} needs a value")
                for o in re.findall(r'"(--[\w-]+) needs a value"', bash)
            }
        )
        p = sorted({_message(" ".join(c)) for c in command_calls(ROOT / "k8s" / ps, ps_fn)})
        assert p == b, (sh_fn, set(b) ^ set(p))
