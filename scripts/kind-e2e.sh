#!/usr/bin/env bash
# End-to-end test on a real Kubernetes cluster in Docker (kind): the path from
# "the manifests render and validate" to "the stack runs on Kubernetes".
#
#   scripts/kind-e2e.sh [--name NAME] [--no-build] [--keep] [--timeout 300s] [--grouped]
#
# Creates the kind cluster NAME (default tradewind-e2e), builds the image
# tradewind:dev (--no-build: use the one already in Docker), loads it into
# the cluster, creates the four Secrets (random values; the exchange Secret
# holds the no-key marker paper-no-key, so execution runs on paper), runs
# k8s/deploy-k8s.sh --overlay dev, waits for every rollout, and then runs the
# replay check against PostgreSQL: the fake exchange replays the bundled
# recording once, from ws's first subscription, and every one of its trades
# must be stored, none twice, none extra. The cluster is deleted at the end
# unless --keep. --grouped deploys dev-grouped instead (signal, risk and
# execution in one orderpath Deployment; deploy-k8s.sh --grouped).
# Needs docker, kind and kubectl. Exit codes: 0 passed, 1 failed, 2 usage.
set -euo pipefail

name="tradewind-e2e"
build=1
keep=0
grouped=()
timeout="300s"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 1; }
usage_error() { echo "error: $*" >&2; exit 2; }
log() { echo "==> $*"; }

while (( $# )); do
  case "$1" in
    --name) (( $# > 1 )) || usage_error "--name needs a value"; name="$2"; shift 2 ;;
    --timeout) (( $# > 1 )) || usage_error "--timeout needs a value"; timeout="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    --grouped) grouped=(--grouped); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; usage_error "unknown option: $1" ;;
  esac
done
[[ "${timeout}" =~ ^[0-9]+$ ]] && timeout="${timeout}s"
[[ "${timeout}" =~ ^[1-9][0-9]*[smh]$ ]] || usage_error "--timeout must be a duration such as 300s or 10m"
recording="${root}/src/tradewind/data/binance_spot_btcusdt_combined_20240808.jsonl"
[[ -f "${recording}" ]] || die "the bundled recording is missing: ${recording}"
expected="$(grep -c '"e":"trade"' "${recording}")"

for tool in docker kind kubectl; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not installed"
done
context="kind-${name}"
kc() { kubectl --context "${context}" "$@"; }

if kind get clusters | grep -qx "${name}"; then
  log "using the existing kind cluster ${name}"
else
  log "creating the kind cluster ${name}"
  kind create cluster --name "${name}" --wait 180s
fi
if (( ! keep )); then
  trap 'log "deleting the kind cluster ${name}"; kind delete cluster --name "${name}"' EXIT
fi

if (( build )); then
  log "building the image tradewind:dev"
  docker build -t tradewind:dev "${root}"
fi
log "loading tradewind:dev into the cluster"
kind load docker-image tradewind:dev --name "${name}"

log "creating the Secrets (random values; paper-no-key for the exchange)"
kc apply -f "${root}/k8s/base/namespace.yaml"
secret() {
  kc -n tradewind create secret generic "$1" "${@:2}" --dry-run=client -o yaml | kc apply -f -
}
# 48 random bytes: well above the 32 bytes of entropy tokens must carry.
rand() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n'; }
secret tradewind-postgres --from-literal=password="$(rand)"
secret tradewind-control --from-literal=token="$(rand)" --from-literal=order-key="$(rand)"
# A Redis ACL user per service; the ACL file from the topic table (stdlib only).
acl_dir="$(mktemp -d)"
for user in ws signal risk execution db_writer operator orderpath admin; do
  rand > "${acl_dir}/redis_${user}_password"
done
PYTHONPATH="${root}/src" python3 -m tradewind.acl --secrets-dir "${acl_dir}" > "${acl_dir}/users.acl"
secret tradewind-redis-acl --from-file=users.acl="${acl_dir}/users.acl"
# Both layouts' users: the five-process one and the grouped order path's.
for user in ws signal risk execution db_writer orderpath; do
  secret "tradewind-redis-${user//_/-}" --from-file=password="${acl_dir}/redis_${user}_password"
done
rm -rf "${acl_dir}"
secret tradewind-grafana --from-literal=admin-password="$(rand)"
secret tradewind-exchange --from-literal=api-key=paper-no-key --from-literal=api-secret=paper-no-key --from-literal=api-passphrase=paper-no-key

log "deploying the dev overlay ${grouped[*]}"
bash "${root}/k8s/deploy-k8s.sh" --overlay dev ${grouped[@]+"${grouped[@]}"} --context "${context}" \
  --timeout "${timeout}" --yes

log "waiting for every Deployment to be available"
kc -n tradewind wait --for=condition=Available deployment --all --timeout="${timeout}"

log "replay check: the ${expected} recorded trades in PostgreSQL, none twice, none extra"
query="SELECT count(*), count(DISTINCT (exchange, symbol, trade_id)) FROM trades"
psql() { kc -n tradewind exec postgres-0 -- psql -U tradewind -d tradewind -tA -F ' ' -c "$1"; }
total=0
distinct=0
for _ in $(seq 1 60); do
  read -r total distinct <<< "$(psql "${query}" || echo "0 0")"
  (( total == distinct )) || die "duplicate trades in PostgreSQL: ${total} rows, ${distinct} distinct"
  (( total <= expected )) || die "${total} trades in PostgreSQL, more than the ${expected} recorded"
  (( total == expected )) && break
  sleep 5
done
(( total == expected )) || die "${total} of the ${expected} recorded trades in PostgreSQL after 5 minutes"
log "kind e2e passed: all ${expected} recorded trades stored once"
