#!/usr/bin/env bash
# Remove Tradewind from a cluster (cleanup-k8s.ps1 is the same in PowerShell).
#
#   cleanup-k8s.sh [--context NAME] [--delete-data] [--delete-secrets] [--yes] [--dry-run]
#
# Deletes the workloads, Services, ConfigMaps, autoscalers, budgets, policies
# and RBAC of the tradewind namespace. Data (the PersistentVolumeClaims of
# Redis, PostgreSQL and Prometheus) and the Secrets are kept unless you ask.
# Every deletion names the cluster and context and asks first (--yes skips
# the questions). The namespace is deleted only with --delete-data AND
# --delete-secrets (deleting it deletes everything in it, Secrets included).
# Exit codes: 0 done, 1 failed (a query or deletion failed: nothing after it
# runs), 2 usage, 3 not confirmed (the steps before the question are done).
set -euo pipefail

NAMESPACE="tradewind"
SELECTOR="app.kubernetes.io/part-of=tradewind"
KINDS="deployment,statefulset,service,configmap,horizontalpodautoscaler,poddisruptionbudget,networkpolicy,serviceaccount,role,rolebinding,job"
# Both layouts' Secrets (the grouped order path has tradewind-redis-orderpath).
SECRETS=(tradewind-postgres tradewind-control tradewind-exchange tradewind-grafana
  tradewind-redis-acl tradewind-redis-ws tradewind-redis-signal tradewind-redis-risk
  tradewind-redis-execution tradewind-redis-db-writer tradewind-redis-orderpath)
context=""
delete_data=0
delete_secrets=0
assume_yes=0
dry_run=0

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 1; }
usage_error() { echo "error: $*" >&2; exit 2; }

while (( $# )); do
  case "$1" in
    --context) (( $# > 1 )) || usage_error "--context needs a value"; context="$2"; shift 2 ;;
    --delete-data) delete_data=1; shift ;;
    --delete-secrets) delete_secrets=1; shift ;;
    -y|--yes) assume_yes=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; usage_error "unknown option: $1" ;;
  esac
done

context_name="${context:-the current context}"
# Every kubectl call goes through kc, so --context applies to all of them.
kc() {
  if [[ -n "${context}" ]]; then kubectl --context "${context}" "$@"; else kubectl "$@"; fi
}

confirm() {
  local answer
  (( assume_yes )) && return 0
  if [[ ! -t 0 ]]; then
    echo "no terminal to confirm '$1'; pass --yes to confirm" >&2
    exit 3
  fi
  read -r -p "$1 [y/N] " answer
  [[ "${answer}" == "y" || "${answer}" == "Y" || "${answer}" == "yes" ]] || { echo "not confirmed: nothing more is done" >&2; exit 3; }
}

if (( dry_run )); then
  echo "Tradewind cleanup plan (dry run: no cluster contacted)"
  echo "  1. after confirmation: kubectl -n ${NAMESPACE} delete ${KINDS} -l ${SELECTOR}"
  if (( delete_secrets )); then
    echo "  2. after confirmation: delete the Secrets ${SECRETS[*]}"
  else
    echo "  2. Secrets kept (--delete-secrets to remove them)"
  fi
  if (( delete_data )); then
    echo "  3. after confirmation: delete the PersistentVolumeClaims (ALL DATA)"
  else
    echo "  3. PersistentVolumeClaims kept (--delete-data to remove them)"
  fi
  if (( delete_data && delete_secrets )); then
    echo "  4. after confirmation: delete the namespace ${NAMESPACE}"
  else
    echo "  4. the namespace kept (it goes only with --delete-data and --delete-secrets)"
  fi
  exit 0
fi

command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed"
target="$(kc config view --minify -o 'jsonpath={.contexts[0].name} (cluster {.clusters[0].name} at {.clusters[0].cluster.server})')" \
  || die "cannot read the kubectl configuration for ${context_name}"
[[ -n "${target}" ]] || die "no kubectl context is set (pass --context NAME)"
kc version --request-timeout=10s >/dev/null || die "cannot reach the cluster of context ${target}"
ns="$(kc get namespace "${NAMESPACE}" -o name --ignore-not-found)" \
  || die "cannot look up the namespace ${NAMESPACE} on context ${target}: nothing deleted"
if [[ -z "${ns}" ]]; then
  echo "namespace ${NAMESPACE} does not exist on context ${target}: nothing to do"
  exit 0
fi

confirm "Delete the Tradewind workloads, Services and ConfigMaps in namespace ${NAMESPACE} on context ${target}?"
echo "==> deleting Tradewind resources in ${NAMESPACE}"
kc -n "${NAMESPACE}" delete "${KINDS}" -l "${SELECTOR}" --ignore-not-found --wait=true \
  || die "deleting the Tradewind resources failed: Secrets and data untouched"

if (( delete_secrets )); then
  confirm "Delete the Tradewind Secrets (database password, control token, exchange keys) in namespace ${NAMESPACE} on context ${target}?"
  kc -n "${NAMESPACE}" delete secret "${SECRETS[@]}" --ignore-not-found \
    || die "deleting the Secrets failed: data untouched"
else
  echo "Secrets kept (--delete-secrets to remove them)"
fi

pvcs="$(kc -n "${NAMESPACE}" get pvc -o name)" \
  || die "cannot list the PersistentVolumeClaims in ${NAMESPACE}: data and namespace untouched"
if (( delete_data )); then
  if [[ -n "${pvcs}" ]]; then
    echo "PersistentVolumeClaims in ${NAMESPACE}:"
    while read -r p; do echo "  ${p}"; done <<< "${pvcs}"
    confirm "Delete these PersistentVolumeClaims and ALL their data (Redis, PostgreSQL, Prometheus) on context ${target}?"
    kc -n "${NAMESPACE}" delete pvc --all --wait=true || die "deleting the PersistentVolumeClaims failed"
  else
    echo "no PersistentVolumeClaims in ${NAMESPACE}"
  fi
  if (( delete_secrets )); then
    confirm "Delete the namespace ${NAMESPACE} and anything else left in it on context ${target}?"
    kc delete namespace "${NAMESPACE}" --ignore-not-found || die "deleting the namespace failed"
  else
    echo "namespace ${NAMESPACE} kept: it holds the Secrets (--delete-secrets as well to remove it)"
  fi
else
  [[ -z "${pvcs}" ]] || echo "data kept: $(wc -l <<< "${pvcs}") PersistentVolumeClaims remain (--delete-data to remove them)"
fi
echo "==> done"
