#!/usr/bin/env bash
# Runs docker-compose.yml under podman-compose, with docker-compose.ci.yml
# swapping the upstream Redis, PostgreSQL and Prometheus images for local
# builds from Debian packages (Grafana is left out: Debian has no package).
# The offline profile's fake exchange feeds ws. Checks: /readyz of every
# service, Prometheus targets up, trades stored in PostgreSQL; then db_writer's
# container is stopped while ws keeps publishing and started again: its group
# must drain every market stream, and the stored trades must equal the
# recording's, with no duplicate.
# Needs the image built by .ci/container_checks.sh (localhost/tradewind:ci).
# Usage: bash .ci/compose_checks.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
# shellcheck source=.ci/podman_env.sh
source "${root}/.ci/podman_env.sh"

start=$(date +%s)
project="twci$$"
export TWCI_NETWORK="${project}_net"
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
make -s secrets SECRETS_DIR="${work}/secrets" PYTHON="${root}/.venv/bin/python" >/dev/null
# Published ports on free loopback ports, so nothing on this machine clashes.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
prom_port="$(free_port)"
grafana_port="$(free_port)"
export TRADEWIND_SECRETS_DIR="${work}/secrets" TRADEWIND_IMAGE="${CI_IMAGE}" \
  TRADEWIND_BIND_ADDRESS=127.0.0.1 PROMETHEUS_PORT="${prom_port}" GRAFANA_PORT="${grafana_port}" \
  TRADEWIND_FEED__WS_URLS='{"binance":"ws://fake-exchange:9443"}' \
  TRADEWIND_FEED__REST_URLS='{"binance":"http://fake-exchange:9443"}' \
  TRADEWIND_RETENTION_QUOTES_DAYS=0 TRADEWIND_RETENTION_BOOK_DELTAS_DAYS=0 \
  TRADEWIND_RETENTION_TRADES_DAYS=0 TRADEWIND_RETENTION_BARS_DAYS=0
compose() {
  podman-compose -p "${project}" -f docker-compose.yml -f docker-compose.ci.yml "$@"
}
ctr() { echo "${project}_$1_1"; }
psql_tw() { podman exec "$(ctr postgres)" psql -h /tmp -U tradewind -d tradewind -tAc "$1"; }
redis_cli() {
  podman exec "$(ctr redis)" redis-cli --no-auth-warning --user tradewind-admin \
    --pass "$(cat "${work}/secrets/redis_admin_password")" "$@"
}

logs_and_down() {
  local rc=$?
  if (( rc != 0 )); then
    for s in "${services[@]}"; do
      echo "--- logs ${s}"; podman logs --tail 15 "$(ctr "${s}")" 2>&1 | sed 's/^/    /' || true
    done
  fi
  compose down -v >/dev/null 2>&1 || true
  podman network rm -f "${TWCI_NETWORK}" >/dev/null 2>&1 || true
  rm -rf "${work}"
  exit "${rc}"
}
trap logs_and_down EXIT
trap 'exit 130' INT TERM

# Bounded waits: wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local limit="$1" what="$2" t0=$SECONDS out
  shift 2
  until out="$("$@" 2>&1)"; do
    if (( SECONDS - t0 >= limit )); then
      echo "timed out after ${limit} s: ${what}" >&2
      tail -5 <<<"${out}" | sed 's/^/    /' >&2
      return 1
    fi
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

# Asked from inside the Prometheus container: CNI's port mapping does not
# forward to a 127.0.0.1 host binding, so the published port is not used here.
targets_up() {
  podman exec "$(ctr prometheus)" wget -q -O - "http://127.0.0.1:9090/api/v1/targets?state=active" \
    | python3 -c '
import json, sys
want = {"prometheus", "ws", "signal", "risk", "execution", "db_writer"}
targets = json.load(sys.stdin)["data"]["activeTargets"]
up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
down = [(t["labels"]["job"], t["lastError"]) for t in targets if t["health"] != "up"]
print(f"up: {sorted(up)} down: {down}")
sys.exit(0 if want <= up and not down else 1)
'
}
wait_for 150 "Prometheus: every target up" targets_up
targets_up

# --- stop one service, keep the data flowing, start it again ----------------------------
# The market streams (tw:market:<partition>) carry every event ws publishes;
# db_writer's consumer group acknowledges an entry once it is stored.
market_streams() { redis_cli --scan --pattern "${TRADEWIND_BUS__PREFIX:-tw}:market:*"; }
published() {
  local n=0 key
  while read -r key; do
    [[ -n "${key}" ]] && n=$(( n + $(redis_cli xlen "${key}") ))
  done < <(market_streams)
  echo "${n}"
}
# Every market stream: db_writer's group has nothing pending and no lag.
drained() {
  local key
  while read -r key; do
    [[ -n "${key}" ]] || continue
    redis_cli xinfo groups "${key}" | python3 -c '
import sys
rows = sys.stdin.read().split("\n")
groups = {}
for i in range(0, len(rows) - 1, 2):
    if rows[i] == "name":
        name = rows[i + 1]
        groups[name] = {}
    elif groups:
        groups[name][rows[i]] = rows[i + 1]
g = groups.get("db_writer")
ok = g is not None and g.get("pending") == "0" and g.get("lag") == "0"
print(sys.argv[1], g)
sys.exit(0 if ok else 1)
' "${key}" || return 1
  done < <(market_streams)
}
podman stop -t 30 "$(ctr db_writer)" >/dev/null
stopped_rows="$(trades)"
stopped_pub="$(published)"
grew() { (( $(published) > stopped_pub + 20 )); }
wait_for 120 "ws keeps publishing while db_writer is stopped" grew
down_pub="$(published)"
more_rows() { (( $(trades) > stopped_rows )); }
! more_rows || { echo "trades were stored while db_writer was stopped" >&2; exit 1; }
podman start "$(ctr db_writer)" >/dev/null
wait_for 120 "db_writer /readyz 200 after restart" readyz db_writer
wait_for 120 "db_writer stored trades again" more_rows
wait_for 120 "db_writer's group drained every market stream (nothing pending, no lag)" drained
# The fake exchange replays the bundled recording once: every trade in it must
# end up stored, exactly once, stop and restart notwithstanding.
recording=(src/tradewind/data/*.jsonl)
expected="$(grep -c -h '"e":"trade"' "${recording[@]}" | awk '{ n += $1 } END { print n }')"
all_stored() { (( $(trades) == expected )); }
wait_for 240 "all ${expected} trades of the recording stored" all_stored
rows="$(trades)"
dups="$(psql_tw "SELECT count(*) FROM (SELECT 1 FROM trades GROUP BY exchange, symbol, trade_id HAVING count(*) > 1) d")"
echo "  market entries: ${stopped_pub} when db_writer stopped, ${down_pub} before it restarted;" \
  "trades stored: ${stopped_rows} then ${rows}; duplicates: ${dups}"
(( dups == 0 )) || { echo "duplicate trades stored" >&2; exit 1; }
echo "compose stack checks passed in $(( $(date +%s) - start )) s"
