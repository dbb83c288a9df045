#!/usr/bin/env bash
# Runs docker-compose.yml under podman-compose, with docker-compose.ci.yml
# swapping the upstream Redis, PostgreSQL and Prometheus images for local
# builds from Debian packages (Grafana is left out: Debian has no package).
# The offline profile's fake exchange feeds ws. Checks: /readyz of every
# service, Prometheus targets up, trades stored in PostgreSQL; then db_writer's
# container is stopped while ws keeps publishing, started again, and every
# trade published meanwhile must reach PostgreSQL exactly once.
# Needs the image built by .ci/container_checks.sh (localhost/tradewind:ci).
# Usage: bash .ci/compose_checks.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
# shellcheck source=.ci/podman_env.sh
source "${root}/.ci/podman_env.sh"

start=$(date +%s)
project="twci$$"
work="$(mktemp -d)"
services=(redis postgres prometheus fake-exchange migrate ws signal risk execution db_writer)
tradewind=(ws signal risk execution db_writer)

# podman-compose calls plain `podman`: give it the sandbox's settings.
cat >"${work}/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF="${work}/containers.conf"

# Settings and secrets as `make secrets` and `make up-offline` make them.
mkdir -m 700 "${work}/secrets"
for s in postgres_password control_token grafana_admin_password; do
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"${work}/secrets/${s}"
done
printf 'paper-no-key\n' >"${work}/secrets/exchange_api_key"
printf 'paper-no-key\n' >"${work}/secrets/exchange_api_secret"
chmod 644 "${work}/secrets/"*
prom_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export TRADEWIND_SECRETS_DIR="${work}/secrets" TRADEWIND_IMAGE="${CI_IMAGE}" \
  TRADEWIND_BIND_ADDRESS=127.0.0.1 PROMETHEUS_PORT="${prom_port}" \
  TRADEWIND_FEED__WS_URLS='{"binance":"ws://fake-exchange:9443"}' \
  TRADEWIND_FEED__REST_URLS='{"binance":"http://fake-exchange:9443"}'
compose() {
  podman-compose -p "${project}" -f docker-compose.yml -f docker-compose.ci.yml "$@"
}
ctr() { echo "${project}_$1_1"; }
psql_tw() { podman exec "$(ctr postgres)" psql -h /tmp -U tradewind -d tradewind -tAc "$1"; }
redis_cli() { podman exec "$(ctr redis)" redis-cli "$@"; }

logs_and_down() {
  local rc=$?
  if (( rc != 0 )); then
    for s in "${services[@]}"; do
      echo "--- logs ${s}"; podman logs --tail 15 "$(ctr "${s}")" 2>&1 | sed 's/^/    /' || true
    done
  fi
  compose down -v >/dev/null 2>&1 || true
  podman network rm -f "${project}_backend" "${project}_exchange" "${project}_frontend" >/dev/null 2>&1 || true
  rm -rf "${work}"
  exit "${rc}"
}
trap logs_and_down EXIT

# Bounded waits: wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local limit="$1" what="$2" t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - t0 >= limit )); then echo "timed out after ${limit} s: ${what}" >&2; return 1; fi
    sleep 2
  done
  echo "  ${what} ($((SECONDS - t0)) s)"
}

# --- CI images of the upstream services ---------------------------------------------
t0=$(date +%s)
for s in redis postgres prometheus; do
  pm build "${build_flags[@]}" -q --build-arg "CI_BASE=${CI_ROOTFS_IMAGE}" \
    -t "localhost/tradewind-ci/${s}:${CI_SUITE}" ".ci/images/${s}" >"${work}/build-${s}.log" 2>&1 \
    || { tail -20 "${work}/build-${s}.log"; echo "building the CI ${s} image FAILED" >&2; exit 1; }
done
echo "CI images of redis, postgres, prometheus ready in $(( $(date +%s) - t0 )) s"

# --- up -----------------------------------------------------------------------------
# podman-compose 1.0.3 does not wait on depends_on conditions, so the stack
# comes up in two steps: the stores first, then everything else once they answer.
compose up -d redis postgres prometheus >"${work}/up.log" 2>&1 || { cat "${work}/up.log"; exit 1; }
wait_for 90 "redis answers" redis_cli ping
wait_for 120 "postgres accepts connections" podman exec "$(ctr postgres)" pg_isready -U tradewind -d tradewind -h 127.0.0.1
compose up -d "${services[@]:3}" >>"${work}/up.log" 2>&1 || { cat "${work}/up.log"; exit 1; }
migrate_rc="$(podman wait "$(ctr migrate)")"
[[ "${migrate_rc}" == "0" ]] || { podman logs "$(ctr migrate)"; echo "migrate exited ${migrate_rc}" >&2; exit 1; }
echo "  migrate exited 0"

readyz() {
  podman exec "$(ctr "$1")" python -c \
    "import sys,urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:8080/readyz', timeout=3).status == 200 else 1)"
}
for s in "${tradewind[@]}"; do
  wait_for 120 "${s} /readyz 200" readyz "${s}"
done

trades() { psql_tw "SELECT count(*) FROM trades"; }
has_trades() { (( $(trades) > 0 )); }
wait_for 120 "trades stored in PostgreSQL" has_trades

targets_up() {
  python3 - "${prom_port}" <<'PY'
import json, sys, urllib.request
want = {"prometheus", "ws", "signal", "risk", "execution", "db_writer"}
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/targets?state=active"
targets = json.load(urllib.request.urlopen(url, timeout=5))["data"]["activeTargets"]
up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
down = [(t["labels"]["job"], t["lastError"]) for t in targets if t["health"] != "up"]
print(f"up: {sorted(up)} down: {down}")
sys.exit(0 if want <= up and not down else 1)
PY
}
wait_for 150 "Prometheus: every target up" targets_up
targets_up

# --- stop one service, keep the data flowing, start it again ----------------------------
trade_streams() { redis_cli --scan --pattern '*trade*' --type stream; }
published() {
  local n=0 key
  while read -r key; do
    [[ -n "${key}" ]] && n=$(( n + $(redis_cli xlen "${key}") ))
  done < <(trade_streams)
  echo "${n}"
}
before_pub="$(published)"
podman stop -t 30 "$(ctr db_writer)" >/dev/null
stopped_rows="$(trades)"
grew() { (( $(published) > before_pub + 20 )); }
wait_for 120 "ws keeps publishing while db_writer is stopped" grew
podman start "$(ctr db_writer)" >/dev/null
wait_for 120 "db_writer /readyz 200 after restart" readyz db_writer
pub="$(published)"
caught_up() { (( $(trades) >= pub )); }
wait_for 120 "db_writer caught up with the ${pub} trades published" caught_up
rows="$(trades)"
dups="$(psql_tw "SELECT count(*) FROM (SELECT 1 FROM trades GROUP BY exchange, symbol, trade_id HAVING count(*) > 1) d")"
echo "  trades: ${stopped_rows} stored when db_writer stopped, ${pub} published by then, ${rows} stored after restart, ${dups} duplicates"
(( dups == 0 )) || { echo "duplicate trades stored" >&2; exit 1; }
echo "compose stack checks passed in $(( $(date +%s) - start )) s"
