#!/usr/bin/env bash
# Deploy Tradewind to Kubernetes with kustomize (deploy-k8s.ps1 is the same in PowerShell).
#
#   deploy-k8s.sh [--overlay dev|prod] [--grouped] [--registry REG] [--tag TAG]
#                 [--dry-run] [--timeout 300s] [--context NAME] [--no-rollback] [--yes]
#
# Steps: check prerequisites, render the overlay (with the image you name),
# name the cluster and context and ask to confirm (--yes skips the question),
# check that the required Secrets exist, apply with a server-side dry run
# first, wait for every rollout, and roll back the Deployments this release
# changed if one does not become ready. --dry-run renders and prints the
# plan; it needs no cluster. --timeout takes a unit (300s, 5m, 1h); a bare
# number means seconds. prod with --tag needs --registry. --grouped deploys
# overlays/<overlay>-grouped: signal, risk and execution in one Deployment
# (orderpath, k8s/components/grouped-order-path) instead of three.
# Exit codes: 0 deployed, 1 failed (cluster, apply, rollout), 2 usage,
# 3 not confirmed (answered no, or no terminal and no --yes).
set -euo pipefail

NAMESPACE="tradewind"
SELECTOR="app.kubernetes.io/part-of=tradewind"
REQUIRED_SECRETS=(tradewind-postgres tradewind-control tradewind-exchange tradewind-grafana
  tradewind-redis-acl tradewind-redis-ws tradewind-redis-signal tradewind-redis-risk
  tradewind-redis-execution tradewind-redis-db-writer)
REVISIONS='custom-columns=NAME:.metadata.name,REVISION:.metadata.annotations.deployment\.kubernetes\.io/revision'
overlay="dev"
registry=""
tag=""
dry_run=0
grouped=0
rollback=1
timeout="300s"
context=""
assume_yes=0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 1; }
usage_error() { echo "error: $*" >&2; exit 2; }
log() { echo "==> $*"; }

while (( $# )); do
  case "$1" in
    -o|--overlay) (( $# > 1 )) || usage_error "--overlay needs a value"; overlay="$2"; shift 2 ;;
    -r|--registry) (( $# > 1 )) || usage_error "--registry needs a value"; registry="$2"; shift 2 ;;
    -t|--tag) (( $# > 1 )) || usage_error "--tag needs a value"; tag="$2"; shift 2 ;;
    --timeout) (( $# > 1 )) || usage_error "--timeout needs a value"; timeout="$2"; shift 2 ;;
    --context) (( $# > 1 )) || usage_error "--context needs a value"; context="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --grouped) grouped=1; shift ;;
    --no-rollback) rollback=0; shift ;;
    -y|--yes) assume_yes=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; usage_error "unknown option: $1" ;;
  esac
done

case "${overlay}" in
  dev|prod) ;;
  *) usage_error "--overlay must be dev or prod, not '${overlay}'" ;;
esac
if [[ "${timeout}" =~ ^[0-9]+$ ]]; then
  timeout="${timeout}s"
fi
if [[ ! "${timeout}" =~ ^([0-9]+h)?([0-9]+m)?([0-9]+s)?$ || -z "${timeout}" || ! "${timeout}" =~ [1-9] ]]; then
  usage_error "--timeout must be a positive duration such as 300s, 5m or 1h, not '${timeout}'"
fi
if [[ "${overlay}" == "prod" && -n "${tag}" && -z "${registry}" ]]; then
  usage_error "--overlay prod --tag ${tag} needs --registry (without it the image would be docker.io/library/tradewind:${tag})"
fi
if (( grouped )); then
  # One Redis user for the grouped order path instead of three.
  overlay="${overlay}-grouped"
  REQUIRED_SECRETS=(tradewind-postgres tradewind-control tradewind-exchange tradewind-grafana
    tradewind-redis-acl tradewind-redis-ws tradewind-redis-orderpath tradewind-redis-db-writer)
fi

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

# --- prerequisites -------------------------------------------------------------
command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
kc kustomize --help >/dev/null 2>&1 || die "this kubectl has no 'kustomize' subcommand; install kubectl >= 1.27"
"${here}/base/sync-files.sh" --check >/dev/null || die "k8s/base/files is stale: run k8s/base/sync-files.sh"

# --- render --------------------------------------------------------------------
# kustomize takes only relative resource paths: the temporary kustomization
# lives in k8s/.render.* and is removed on exit.
work="$(mktemp -d "${here}/.render.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/render"
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
} > "${work}/render/kustomization.yaml"
kc kustomize "${work}/render" -o "${work}/manifest.yaml" || die "kustomize failed for overlay ${overlay}"

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
  echo "    1. name the cluster and context, confirm (--yes skips the question)"
  echo "    2. kubectl apply the Namespace, then check the required Secrets exist"
  echo "    3. kubectl apply --dry-run=server, then kubectl apply -f <rendered manifest>"
  echo "    4. kubectl rollout status for StatefulSets: ${statefulsets//$'\n'/ }"
  echo "    5. kubectl rollout status for Deployments: ${deployments//$'\n'/ } (timeout ${timeout})"
  if (( rollback )); then
    echo "    6. on failure: kubectl rollout undo for each Deployment this release changed"
  else
    echo "    6. on failure: no rollback (--no-rollback)"
  fi
  exit 0
fi

# --- cluster checks ---------------------------------------------------------------
log "checking the cluster"
target="$(kc config view --minify -o 'jsonpath={.contexts[0].name} (cluster {.clusters[0].name} at {.clusters[0].cluster.server})')" \
  || die "cannot read the kubectl configuration for ${context_name}"
[[ -n "${target}" ]] || die "no kubectl context is set (pass --context NAME)"
kc version --request-timeout=10s >/dev/null || die "cannot reach the cluster of context ${target}"
confirm "Deploy overlay ${overlay} to namespace ${NAMESPACE} on context ${target}?"
kc apply -f "${here}/base/namespace.yaml" >/dev/null || die "cannot apply the namespace ${NAMESPACE}"
found="$(kc -n "${NAMESPACE}" get secret "${REQUIRED_SECRETS[@]}" -o name --ignore-not-found)" \
  || die "cannot look up the Secrets in ${NAMESPACE}: nothing applied"
missing=()
for s in "${REQUIRED_SECRETS[@]}"; do
  grep -qx "secret/${s}" <<< "${found}" || missing+=("${s}")
done
if (( ${#missing[@]} )); then
  echo "missing Secrets in namespace ${NAMESPACE}: ${missing[*]}" >&2
  die "create them first (k8s/SECRETS_GUIDE.md, k8s/base/secrets.template.yaml)"
fi
before="$(kc -n "${NAMESPACE}" get deployment -l "${SELECTOR}" -o "${REVISIONS}" --no-headers)" \
  || die "cannot read the current Deployments in ${NAMESPACE}: nothing applied"

# Roll back the Deployments whose revision this release moved (unchanged ones
# and StatefulSets are left alone; Deployments it created are named).
roll_back() {
  local after name rev old undone=()
  if (( ! rollback )); then
    echo "no rollback (--no-rollback): the release stays as applied" >&2
    return 0
  fi
  after="$(kc -n "${NAMESPACE}" get deployment -l "${SELECTOR}" -o "${REVISIONS}" --no-headers)" \
    || { echo "cannot read the Deployments after the failure: nothing rolled back" >&2; return 0; }
  while read -r name rev; do
    [[ -n "${name}" ]] || continue
    old="$(awk -v n="${name}" '$1 == n { print $2 }' <<< "${before}")"
    if [[ -z "${old}" ]]; then
      echo "deployment/${name} was created by this release: not rolled back (kubectl -n ${NAMESPACE} delete deployment ${name} to remove it)" >&2
    elif [[ "${old}" != "${rev}" ]]; then
      log "rolling back deployment/${name} (revision ${rev} -> ${old})"
      if kc -n "${NAMESPACE}" rollout undo "deployment/${name}"; then
        undone+=("${name}")
      else
        echo "rollback of deployment/${name} failed" >&2
      fi
    fi
  done <<< "${after}"
  for name in ${undone[@]+"${undone[@]}"}; do  # bash 3.2 (macOS): an empty array is unset
    kc -n "${NAMESPACE}" rollout status "deployment/${name}" --timeout="${timeout}" \
      || echo "deployment/${name} is not ready after the rollback either" >&2
  done
}

# --- apply and wait -----------------------------------------------------------------
log "validating overlay ${overlay} on the server (dry run)"
kc apply --dry-run=server -f "${work}/manifest.yaml" >/dev/null \
  || die "the server rejected the manifest (see above): nothing applied"
log "applying overlay ${overlay}"
if ! kc apply -f "${work}/manifest.yaml"; then
  echo "kubectl apply failed midway: the objects listed above were applied, the rest were not" >&2
  roll_back
  die "deployment of overlay ${overlay} failed during apply; fix the error above and run this again"
fi

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
  roll_back
  die "deployment of overlay ${overlay} failed; see 'kubectl -n ${NAMESPACE} get pods' and k8s/README.md#troubleshooting-by-symptom"
fi
# kubectl apply never deletes: after a switch of the order-path layout the
# other layout's Deployments still run beside this one. Name them.
stale=()
while read -r name _; do
  [[ -n "${name}" ]] || continue
  grep -qx "${name}" <<< "${deployments}" || stale+=("${name}")
done <<< "${before}"
if (( ${#stale[@]} )); then
  echo "still running but not part of overlay ${overlay}: ${stale[*]}; after a switch of the order-path layout remove them (k8s/README.md#the-grouped-order-path)" >&2
fi
log "Tradewind (${overlay}) is deployed and ready"
