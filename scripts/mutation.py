"""Mutation score of the code where a missed bug costs money (``make mutation``).

Runs mutmut (configured in pyproject's ``[tool.mutmut]``: the files and the
tests that exercise them) one file at a time, each within a time budget, and
prints the score per file: killed (a timeout counts as killed: the tests
noticed) over every mutant checked. Mutants a budget (or ``--sample``) left
unchecked are listed as such, never counted as killed. Results are kept in
``mutants/``, so a second run only checks what the first left; ``--again
survivors`` re-checks the survivors after new tests (``mutmut results`` /
``mutmut show NAME`` inspect them). A change to the test selection in
pyproject makes mutmut forget every result. Too slow for CI: a pre-release
step (docs/testing.md).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).parent / "mutmut"
KILLED = {"killed", "timeout", "caught by type check"}
SEED = 18


def targets() -> list[str]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    out: list[str] = []
    for pattern in conf["only_mutate"]:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            if path.name != "__init__.py" and rel not in out:
                out.append(rel)
    return out


MUTANTS = ROOT / "mutants"
STAMP = MUTANTS / "tradewind-selection.sha256"
"""The hash of ``[tool.mutmut]`` the kept results were made under."""


def selection_hash() -> str:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()


def forget_stale_results() -> None:
    """Results made under another selection are thrown away: mutmut resets
    itself only when it runs, and a file with nothing left to check never
    starts it, so old kills would be reported as if the new selection made them."""
    wanted = selection_hash()
    kept = STAMP.read_text().strip() if STAMP.exists() else None
    if MUTANTS.exists() and kept != wanted:
        print("mutation: the test selection changed since the kept results: starting over")
        shutil.rmtree(MUTANTS)
    MUTANTS.mkdir(exist_ok=True)
    STAMP.write_text(wanted + "\n")


def module_of(path: str) -> str:
    """``src/tradewind/risk/engine.py`` -> ``tradewind.risk.engine``."""
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def run_one(path: str, children: int, budget_s: float, sample: int, again: str) -> bool:
    """mutmut on one file's mutants (or a seeded sample of them); False when
    the budget ran out first.

    mutmut 3 re-runs every mutant it is given by name, cached or not, so only
    the ones ``again`` asks for are named: those never checked (a run that
    ran out of time continues where it stopped), also the survivors (after
    new tests), or all. Each mutant then runs only the tests that called its
    function in mutmut's stats pass, not the whole selection."""
    prefix = module_of(path) + "."
    status = {k: v for k, v in results().items() if k.startswith(prefix)}
    if not status:
        run_mutmut([f"{module_of(path)}.*__mutmut_1"], children, budget_s)
        status = {k: v for k, v in results().items() if k.startswith(prefix)}
    if sample:
        names = random.Random(f"{SEED}:{path}").sample(sorted(status), min(sample, len(status)))
    else:
        names = sorted(
            k
            for k, v in status.items()
            if again == "all" or v == "not checked" or (again == "survivors" and v not in KILLED)
        )
    if not names:
        print(f"mutation: {path}: nothing left to check (--again survivors|all re-checks)")
        return True
    return run_mutmut(names, children, budget_s)


def run_mutmut(names: list[str], children: int, budget_s: float) -> bool:
    cmd = [str(MUTMUT), "run", "--max-children", str(children), *names]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return False
    if proc.returncode not in (0, None):
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        print(f"mutation: mutmut failed: {' / '.join(tail)}", file=sys.stderr)
    return True


def results() -> dict[str, str]:
    """Every mutant's status, by name."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name.startswith("tradewind."):
            status[name] = state.strip()
    return status


def report(files: list[str], status: dict[str, str], survivors: bool) -> bool:
    """Print the table; True when every file scores at least 90 %."""
    print(f"{'file':44} {'killed':>7} {'surv.':>6} {'no test':>7} {'unchecked':>9} {'score':>7}")
    ok = True
    for path in files:
        prefix = module_of(path) + "."
        mine = {k: v for k, v in status.items() if k.startswith(prefix) and "__mutmut_" in k}
        c = Counter("killed" if v in KILLED else v for v in mine.values())
        checked = sum(n for s, n in c.items() if s != "not checked")
        score = c["killed"] / checked if checked else 0.0
        ok = ok and checked == len(mine) and score >= 0.9
        print(
            f"{path:44} {c['killed']:>7} {c['survived']:>6} {c['no tests']:>7} "
            f"{c['not checked']:>9} {score:>7.1%}"
        )
        if survivors:
            for name, v in sorted(mine.items()):
                if v not in KILLED and v != "not checked":
                    print(f"    {v}: {name}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="fnmatch patterns of the files (default: all)")
    ap.add_argument("--max-children", type=int, default=1, help="parallel mutants (default 1)")
    ap.add_argument("--budget-s", type=float, default=3600.0, help="time budget per file")
    ap.add_argument("--sample", type=int, default=0, help="check only N mutants per file (seeded)")
    ap.add_argument(
        "--again",
        choices=("none", "survivors", "all"),
        default="none",
        help="re-check mutants already checked: none (default), survivors, all",
    )
    ap.add_argument("--report-only", action="store_true", help="print the last results")
    ap.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = ap.parse_args()
    if not MUTMUT.exists():
        print("tradewind: mutmut not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    files = [
        f for f in targets() if not args.files or any(fnmatch.fnmatch(f, p) for p in args.files)
    ]
    if not files:
        print(f"tradewind: no mutation target matches {args.files}", file=sys.stderr)
        return 2
    if not args.report_only:
        forget_stale_results()
        for path in files:
            start = time.monotonic()
            done = run_one(path, args.max_children, args.budget_s, args.sample, args.again)
            spent = time.monotonic() - start
            if not done:
                print(f"mutation: {path}: time budget of {args.budget_s:.0f} s spent")
            print(f"mutation: {path}: {spent:.0f} s wall", flush=True)
    return 0 if report(files, results(), args.survivors) else 1


if __name__ == "__main__":
    sys.exit(main())
