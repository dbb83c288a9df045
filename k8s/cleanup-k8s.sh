#!/usr/bin/env bash
# Remove Tradewind from a cluster.
#
#   cleanup-k8s.sh [--context NAME] [--delete-data] [--delete-secrets] [--yes] [--dry-run]
#
# Deletes the workloads, Services, ConfigMaps, autoscalers, budgets, policies
# and RBAC of the tradewind namespace. Data (the PersistentVolumeClaims of
# Redis, PostgreSQL and Prometheus) and the Secrets are kept unless you ask,
# and you are asked to confirm before they are deleted (--yes skips the question).
set -euo pipefail

NAMESPACE="tradewind"
SELECTOR="app.kubernetes.io/part-of=tradewind"
KINDS="deployment,statefulset,service,configmap,horizontalpodautoscaler,poddisruptionbudget,networkpolicy,serviceaccount,role,rolebinding,job"
context=""
delete_data=0
delete_secrets=0
assume_yes=0
dry_run=0

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 1; }

while (( $# )); do
  case "$1" in
    --context) context="${2:?--context needs a value}"; shift 2 ;;
    --delete-data) delete_data=1; shift ;;
    --delete-secrets) delete_secrets=1; shift ;;
    -y|--yes) assume_yes=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

kc() {
  if [[ -n "${context}" ]]; then kubectl --context "${context}" "$@"; else kubectl "$@"; fi
}

confirm() {
  local answer
  (( assume_yes )) && return 0
  if [[ ! -t 0 ]]; then
    echo "no terminal to confirm '$1'; pass --yes to confirm" >&2
    return 1
  fi
  read -r -p "$1 [y/N] " answer
  [[ "${answer}" == "y" || "${answer}" == "Y" || "${answer}" == "yes" ]]
}

if (( dry_run )); then
  echo "Tradewind cleanup plan (dry run: no cluster contacted)"
  echo "  1. kubectl -n ${NAMESPACE} delete ${KINDS} -l ${SELECTOR}"
  if (( delete_secrets )); then
    echo "  2. after confirmation: delete the Secrets tradewind-postgres, tradewind-control, tradewind-exchange, tradewind-grafana"
  else
    echo "  2. Secrets kept (--delete-secrets to remove them)"
  fi
  if (( delete_data )); then
    echo "  3. after confirmation: delete the PersistentVolumeClaims (ALL DATA) and the namespace"
  else
    echo "  3. PersistentVolumeClaims and the namespace kept (--delete-data to remove them)"
  fi
  exit 0
fi

command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed"
kc version --request-timeout=10s >/dev/null 2>&1 || die "cannot reach the cluster"
if ! kc get namespace "${NAMESPACE}" >/dev/null 2>&1; then
  echo "namespace ${NAMESPACE} does not exist: nothing to do"
  exit 0
fi

echo "==> deleting Tradewind resources in ${NAMESPACE}"
kc -n "${NAMESPACE}" delete "${KINDS}" -l "${SELECTOR}" --ignore-not-found --wait=true

if (( delete_secrets )); then
  if confirm "Delete the Tradewind Secrets (database password, control token, exchange keys)?"; then
    kc -n "${NAMESPACE}" delete secret tradewind-postgres tradewind-control tradewind-exchange tradewind-grafana --ignore-not-found
  else
    echo "Secrets kept"
  fi
fi

pvcs="$(kc -n "${NAMESPACE}" get pvc -o name 2>/dev/null || true)"
if [[ -n "${pvcs}" ]]; then
  echo "PersistentVolumeClaims in ${NAMESPACE}:"
  while read -r p; do echo "  ${p}"; done <<< "${pvcs}"
  if (( delete_data )) && confirm "Delete these PersistentVolumeClaims and ALL their data (Redis, PostgreSQL, Prometheus), and the namespace?"; then
    kc -n "${NAMESPACE}" delete pvc --all --wait=true
    kc delete namespace "${NAMESPACE}" --ignore-not-found
  else
    echo "data kept: the PersistentVolumeClaims and the namespace remain (--delete-data to remove them)"
  fi
elif (( delete_data )); then
  kc delete namespace "${NAMESPACE}" --ignore-not-found
fi
echo "==> done"
