#!/usr/bin/env bash
# Proves that requirements.lock is complete for the oldest Python this machine
# can install (Debian bookworm's python3.11 is 3.11.2, below 3.11.3 where redis
# needs async-timeout): a fresh venv from it, the lock installed with hashes and
# nothing else, `pip check` (every installed distribution's requirements met),
# then every module of tradewind imported.
# Usage: bash .ci/oldest_python.sh   (OLDEST_PYTHON=/path/to/python3.11 to choose)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
py="${OLDEST_PYTHON:-/usr/bin/python3.11}"
venv="${root}/.venv-oldest"
[[ -x "${py}" ]] || { echo "no ${py}: apt-get install python3.11 python3.11-venv" >&2; exit 1; }

"${py}" -m venv --clear "${venv}"
"${venv}/bin/python" -m pip install -q --require-hashes --no-deps -r requirements.lock
"${venv}/bin/python" -m pip install -q --no-deps --no-index --no-build-isolation .
echo "python $("${venv}/bin/python" -c 'import platform; print(platform.python_version())') in ${venv##*/}"

if ! out="$("${venv}/bin/python" -m pip check 2>&1)"; then
  echo "${out}"
  echo "requirements.lock lacks what this Python needs: regenerate it with \`make lock\`" \
    "(it compiles under the oldest Python, so marker-gated pins such as async-timeout stay)" >&2
  exit 1
fi

# Outside the source tree, so the installed package is what gets imported.
(cd /tmp && "${venv}/bin/python" - <<'PY'
import importlib
import pkgutil
import sys

import tradewind

failed = []
# Scripts run by a tool, not imported: `python -m tradewind` and Alembic's
# env.py (it needs the context Alembic sets up); .ci/container_checks.sh runs
# the CLI and `migrate` for real.
scripts = ("__main__", "migrations.env")
found = [m.name for m in pkgutil.walk_packages(tradewind.__path__, "tradewind.")]
names = [n for n in found if not n.endswith(scripts)]
print("not imported (scripts):", ", ".join(sorted(set(found) - set(names))))
for name in ["tradewind", *names]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # report every failure, not only the first
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(f"imported {len(names) + 1 - len(failed)} of {len(names) + 1} tradewind modules"
      f" from {tradewind.__file__.rsplit('/', 2)[0]} under Python {sys.version.split()[0]}")
if failed:
    print("\n".join(failed))
    sys.exit(1)
PY
)
