#!/usr/bin/env bash
# Known-vulnerability audit of what we ship: both locks (pip-audit --strict,
# hashes required) and an image (Trivy, critical findings fail). Each runs only
# when its advisory database is reachable; otherwise it says so in capitals and
# is never reported as passed.
# Usage: bash .ci/audit.sh [IMAGE]   (default: localhost/tradewind:ci, built by
#   .ci/container_checks.sh; a docker or podman image)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
export PATH="${root}/.venv-tools/bin:${PATH}"
image="${1:-localhost/tradewind:ci}"
rc=0
not_run=()

# --- Python dependencies ---------------------------------------------------------
if ! command -v pip-audit >/dev/null; then
  not_run+=("pip-audit: not installed (bash .ci/install_deploy_tools.sh)")
elif ! probe="$(python3 - <<'PY' 2>&1
import re, urllib.request
# pip-audit reads PyPI's per-release JSON (/pypi/NAME/VERSION/json), where the
# advisories are; probe it with the first pin of the lock. Some mirrors and
# proxies serve only the per-project page.
name, version = re.search(r"^([A-Za-z0-9_.-]+)==(\S+)", open("requirements.lock").read(), re.M).groups()
url = f"https://pypi.org/pypi/{name}/{version}/json"
try:
    urllib.request.urlopen(url, timeout=10)
except Exception as exc:
    raise SystemExit(f"{url}: {exc}")
PY
)"; then
  not_run+=("pip-audit: PyPI's advisory data is unreachable (${probe##*$'\n'})")
else
  for lock in requirements.lock requirements-dev.lock; do
    if pip-audit --strict --require-hashes --disable-pip --progress-spinner off -r "${lock}"; then
      echo "pip-audit ${lock}: no known vulnerabilities"
    else
      echo "pip-audit ${lock}: FAILED" >&2
      rc=1
    fi
  done
fi

# --- the image -----------------------------------------------------------------------
cache="${TRIVY_CACHE_DIR:-${HOME:-/tmp}/.cache/trivy}"
if ! command -v trivy >/dev/null; then
  not_run+=("image scan: trivy not installed (bash .ci/install_deploy_tools.sh)")
elif ! db_err="$(trivy image --cache-dir "${cache}" --download-db-only --quiet 2>&1)"; then
  not_run+=("image scan of ${image}: Trivy's vulnerability database is unreachable ($(grep -o 'failed to download[^:]*' <<<"${db_err}" | head -n1))")
else
  tar="$(mktemp -u)-image.tar"
  saved=0
  if command -v podman >/dev/null && podman image exists "${image}" 2>/dev/null; then
    podman save -o "${tar}" "${image}" >/dev/null && saved=1
  elif command -v docker >/dev/null && docker image inspect "${image}" >/dev/null 2>&1; then
    docker save -o "${tar}" "${image}" && saved=1
  fi
  if (( saved )); then
    if trivy image --cache-dir "${cache}" --skip-db-update --input "${tar}" \
        --scanners vuln --severity CRITICAL --exit-code 1 --quiet; then
      echo "trivy ${image}: no known critical vulnerabilities"
    else
      echo "trivy ${image}: FAILED (critical vulnerabilities above)" >&2
      rc=1
    fi
  else
    not_run+=("image scan: no image ${image} (build it first)")
  fi
  rm -f "${tar}"
fi

for line in "${not_run[@]}"; do
  echo "!!! AUDIT NOT RUN — ${line} !!!"
done
exit "${rc}"
