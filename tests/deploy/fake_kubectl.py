"""A recording stand-in for kubectl: logs every call and answers from a table.

Run as ``python fake_kubectl.py ARGS...`` (tests put a ``kubectl`` wrapper on
PATH). ``FAKE_KUBECTL_TABLE`` names a JSON list of rules, tried in order:
``{"match": REGEX, "rc": 0, "out": "", "err": "", "times": N, "real": false}``.
The regex is searched in the arguments joined by spaces; a rule with
``times`` answers that many calls and then no more; ``real`` runs the real
kubectl (``REAL_KUBECTL``) instead, for the local ``kustomize`` render. Every
call is appended to ``FAKE_KUBECTL_LOG`` as one JSON line of its arguments;
a call no rule matches fails with exit 99, so an unexpected call shows up.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    log = Path(os.environ["FAKE_KUBECTL_LOG"])
    with log.open("a") as f:
        f.write(json.dumps(argv) + "\n")
    rules = json.loads(Path(os.environ["FAKE_KUBECTL_TABLE"]).read_text())
    state_path = log.with_suffix(".state")
    used: dict[str, int] = json.loads(state_path.read_text()) if state_path.exists() else {}
    joined = " ".join(argv)
    for i, rule in enumerate(rules):
        if not re.search(rule["match"], joined):
            continue
        times = rule.get("times")
        if times is not None and used.get(str(i), 0) >= times:
            continue
        used[str(i)] = used.get(str(i), 0) + 1
        state_path.write_text(json.dumps(used))
        if rule.get("real"):
            return subprocess.run([os.environ["REAL_KUBECTL"], *argv], check=False).returncode
        sys.stdout.write(rule.get("out", ""))
        sys.stderr.write(rule.get("err", ""))
        return int(rule.get("rc", 0))
    sys.stderr.write(f"fake kubectl: unexpected call: {joined}\n")
    return 99


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
