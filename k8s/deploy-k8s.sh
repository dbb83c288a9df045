#!/usr/bin/env bash
# Deploy Tradewind to Kubernetes with kustomize.
#
#   deploy-k8s.sh [--overlay dev|prod] [--registry REG] [--tag TAG] [--dry-run]
#                 [--timeout 300s] [--context NAME] [--no-rollback]
#
# Steps: check prerequisites, render the overlay (with the image you name),
# check that the required Secrets exist, apply, wait for every rollout, and
# roll the Deployments back if one does not become ready.
# --dry-run renders and prints the plan; it needs no cluster.
set -euo pipefail

NAMESPACE="tradewind"
REQUIRED_SECRETS=(tradewind-postgres tradewind-control tradewind-exchange tradewind-grafana)
overlay="dev"
registry=""
tag=""
dry_run=0
rollback=1
timeout="300s"
context=""

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*"; }

while (( $# )); do
  case "$1" in
    -o|--overlay) overlay="${2:?--overlay needs a value}"; shift 2 ;;
    -r|--registry) registry="${2:?--registry needs a value}"; shift 2 ;;
    -t|--tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
    --context) context="${2:?--context needs a value}"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --no-rollback) rollback=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

case "${overlay}" in
  dev|prod) ;;
  *) die "--overlay must be dev or prod, not '${overlay}'" ;;
esac

kc() {
  if [[ -n "${context}" ]]; then kubectl --context "${context}" "$@"; else kubectl "$@"; fi
}

# --- prerequisites -------------------------------------------------------------
command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
kubectl kustomize --help >/dev/null 2>&1 || die "this kubectl has no 'kustomize' subcommand; install kubectl >= 1.27"
"${here}/base/sync-files.sh" --check >/dev/null || die "k8s/base/files is stale: run k8s/base/sync-files.sh"

# --- render --------------------------------------------------------------------
# kustomize takes only relative resource paths: the temporary kustomization
# lives in k8s/.render.* and is removed on exit.
work="$(mktemp -d "${here}/.render.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - ../../overlays/${overlay}"
  if [[ -n "${registry}" || -n "${tag}" ]]; then
    image_name="tradewind"
    [[ -n "${registry}" ]] && image_name="${registry%/}/tradewind"
    echo "images:"
    for from in tradewind registry.example.com/tradewind/tradewind; do
      echo "  - name: ${from}"
      echo "    newName: ${image_name}"
      [[ -n "${tag}" ]] && echo "    newTag: \"${tag}\""
    done
  fi
} > "${work}/kustomization.yaml.tmp"
mkdir -p "${work}/render"
mv "${work}/kustomization.yaml.tmp" "${work}/render/kustomization.yaml"
kubectl kustomize "${work}/render" > "${work}/manifest.yaml" || die "kustomize failed for overlay ${overlay}"

resources="$(awk '
  /^---/ { kind=""; inmeta=0; next }
  /^kind: / { kind=$2 }
  /^metadata:/ { inmeta=1; next }
  inmeta && /^  name: / { print kind "/" $2; inmeta=0 }
  /^[a-z]/ && !/^metadata:/ { inmeta=0 }
' "${work}/manifest.yaml")"
images="$(grep -E '^\s+image: ' "${work}/manifest.yaml" | awk '{print $2}' | sort -u)"
deployments="$(echo "${resources}" | sed -n 's#^Deployment/##p')"
statefulsets="$(echo "${resources}" | sed -n 's#^StatefulSet/##p')"

if (( dry_run )); then
  echo "Tradewind deployment plan (dry run: no cluster contacted)"
  echo "  overlay:    ${overlay}"
  echo "  namespace:  ${NAMESPACE}"
  echo "  context:    ${context:-<current kubectl context>}"
  echo "  images:"
  while read -r line; do echo "    ${line}"; done <<< "${images}"
  echo "  required Secrets (created beforehand, see k8s/SECRETS_GUIDE.md):"
  printf '    %s\n' "${REQUIRED_SECRETS[@]}"
  echo "  resources to apply ($(echo "${resources}" | wc -l)):"
  while read -r line; do echo "    ${line}"; done <<< "${resources}"
  echo "  steps:"
  echo "    1. kubectl apply the Namespace, then check the required Secrets exist"
  echo "    2. kubectl apply -f <rendered manifest>"
  echo "    3. kubectl rollout status for StatefulSets: ${statefulsets//$'\n'/ }"
  echo "    4. kubectl rollout status for Deployments: ${deployments//$'\n'/ } (timeout ${timeout})"
  if (( rollback )); then
    echo "    5. on failure: kubectl rollout undo for each Deployment that existed before"
  else
    echo "    5. on failure: no rollback (--no-rollback)"
  fi
  exit 0
fi

# --- cluster checks ---------------------------------------------------------------
log "checking the cluster"
kc version --request-timeout=10s >/dev/null 2>&1 || die "cannot reach the cluster (kubectl context: ${context:-current})"
kc apply -f "${here}/base/namespace.yaml" >/dev/null
missing=()
for s in "${REQUIRED_SECRETS[@]}"; do
  kc -n "${NAMESPACE}" get secret "${s}" >/dev/null 2>&1 || missing+=("${s}")
done
if (( ${#missing[@]} )); then
  echo "missing Secrets in namespace ${NAMESPACE}: ${missing[*]}" >&2
  die "create them first (k8s/SECRETS_GUIDE.md, k8s/base/secrets.template.yaml)"
fi

previous=()
for d in ${deployments}; do
  kc -n "${NAMESPACE}" get deployment "${d}" >/dev/null 2>&1 && previous+=("${d}")
done

# --- apply and wait -----------------------------------------------------------------
log "applying overlay ${overlay}"
kc apply -f "${work}/manifest.yaml"

failed=0
for s in ${statefulsets}; do
  log "waiting for statefulset/${s}"
  kc -n "${NAMESPACE}" rollout status "statefulset/${s}" --timeout="${timeout}" || failed=1
done
for d in ${deployments}; do
  log "waiting for deployment/${d}"
  kc -n "${NAMESPACE}" rollout status "deployment/${d}" --timeout="${timeout}" || failed=1
done

if (( failed )); then
  echo "rollout failed" >&2
  if (( rollback )) && (( ${#previous[@]} )); then
    for d in "${previous[@]}"; do
      log "rolling back deployment/${d}"
      kc -n "${NAMESPACE}" rollout undo "deployment/${d}" || true
    done
    for d in "${previous[@]}"; do
      kc -n "${NAMESPACE}" rollout status "deployment/${d}" --timeout="${timeout}" || true
    done
  fi
  die "deployment of overlay ${overlay} failed; see 'kubectl -n ${NAMESPACE} get pods' and k8s/README.md#troubleshooting-by-symptom"
fi
log "Tradewind (${overlay}) is deployed and ready"
