#!/usr/bin/env bash
# Builds the Tradewind image with podman and runs it hardened, then runs the
# Compose stack in containers (.ci/compose_checks.sh). Upstream images cannot
# be pulled on a machine that reaches only package registries, so the base is
# built from Debian packages: debootstrap a bookworm rootfs (python3, venv),
# `podman import` it, and pass it to the Dockerfile as PYTHON_BASE.
#
# Flags a sandboxed machine needs (docs/deploy.md, "Building in a sandbox"):
#   --runtime runc --cgroup-manager cgroupfs  no systemd, cgroup v1
#   --network=host                            build steps reach PyPI/Debian directly
#   --ulimit nofile=N:N                       the sandbox's hard limit, not podman's default
# Cache: the rootfs tarball under TRADEWIND_CI_CACHE (default
# /var/cache/tradewind-ci) when writable; without it everything is rebuilt.
# Usage: bash .ci/container_checks.sh [--no-compose]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
compose=1
[[ "${1:-}" == "--no-compose" ]] && compose=0

# shellcheck source=.ci/podman_env.sh
source "${root}/.ci/podman_env.sh"

start=$(date +%s)
work="$(mktemp -d)"
pg_db="tradewind_ci_$$"
cleanup() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS ${pg_db}" >/dev/null 2>&1 || true
  rm -rf "${work}"
}
trap cleanup EXIT

# --- the base: Debian bookworm from the package mirror ---------------------------
build_ci_base
lap_base=$(( $(date +%s) - start ))

# --- the image ------------------------------------------------------------------
t0=$(date +%s)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
pm build "${build_flags[@]}" \
  --build-arg "PYTHON_BASE=${CI_PYTHON_BASE}" \
  --build-arg "VERSION=${version}" \
  --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "${CI_IMAGE}" -f Dockerfile . >"${work}/build.log" 2>&1 \
  || { tail -40 "${work}/build.log"; echo "podman build FAILED" >&2; exit 1; }
echo "image ${CI_IMAGE} built in $(( $(date +%s) - t0 )) s (base ready in ${lap_base} s)"

# --- run it hardened: read-only root, uid 10001, no capabilities -----------------
hardened=(--rm "${ulimits[@]}" --read-only --user 10001:10001 --cap-drop ALL
          --security-opt no-new-privileges --tmpfs "/tmp:size=64m,mode=1777")
run_hardened() { pm run "${hardened[@]}" "$@"; }

uid="$(run_hardened --network=none --entrypoint id "${CI_IMAGE}" -u)"
[[ "${uid}" == "10001" ]] || { echo "runs as uid ${uid}, not 10001" >&2; exit 1; }
if ! touch_out="$(run_hardened --network=none --entrypoint /bin/sh "${CI_IMAGE}" -c 'touch /opt/x' 2>&1)"; then
  echo "root filesystem read-only: ${touch_out##*touch: }"
else
  echo "the root filesystem is writable" >&2; exit 1
fi
caps="$(run_hardened --network=none --entrypoint /bin/sh "${CI_IMAGE}" -c 'grep -E "^Cap(Eff|Prm)|^NoNewPrivs" /proc/self/status')"
if ! grep -q 'CapEff:	0000000000000000' <<<"${caps}" || ! grep -q 'NoNewPrivs:	1' <<<"${caps}"; then
  echo "capabilities not dropped: ${caps}" >&2; exit 1
fi
echo "uid 10001, no capabilities, no-new-privileges"

help="$(run_hardened --network=none "${CI_IMAGE}" --help)"
if grep -q -- '--version' <<<"${help}"; then
  shown="$(run_hardened --network=none "${CI_IMAGE}" --version)"
  grep -q "${version}" <<<"${shown}" || { echo "--version says '${shown}', pyproject ${version}" >&2; exit 1; }
  echo "tradewind --version: ${shown}"
else
  grep -q 'Commands' <<<"${help}" || { echo "tradewind --help printed no commands" >&2; exit 1; }
  echo "tradewind --help: ok (no --version option yet)"
fi

# migrate: a fresh database on the machine's PostgreSQL (host network, loopback).
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE ${pg_db}" >/dev/null
run_hardened --network=host \
  -e "TRADEWIND_STORE__URL=postgresql://postgres@127.0.0.1:5432/${pg_db}" \
  "${CI_IMAGE}" migrate >"${work}/migrate.log" 2>&1 \
  || { cat "${work}/migrate.log"; echo "migrate FAILED" >&2; exit 1; }
tables="$(psql -tA -h 127.0.0.1 -U postgres -d "${pg_db}" -c \
  "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")"
revision="$(psql -tA -h 127.0.0.1 -U postgres -d "${pg_db}" -c 'SELECT version_num FROM alembic_version')"
(( tables > 1 )) || { echo "migrate created ${tables} tables" >&2; exit 1; }
echo "migrate: ${tables} tables, alembic revision ${revision}"

# Smoke run: the bundled recording through all five services, in memory and SQLite.
run_hardened --network=none "${CI_IMAGE}" run --db /tmp/smoke.db --quiet >"${work}/run.log" 2>&1 \
  || { cat "${work}/run.log"; echo "tradewind run FAILED" >&2; exit 1; }
grep -Eiq 'trades|orders|fills' "${work}/run.log" \
  || { cat "${work}/run.log"; echo "tradewind run printed no summary" >&2; exit 1; }
echo "tradewind run (bundled data):"
sed 's/^/    /' "${work}/run.log" | tail -12
echo "image checks took $(( $(date +%s) - start )) s"

if (( compose )); then
  bash "${root}/.ci/compose_checks.sh"
fi
