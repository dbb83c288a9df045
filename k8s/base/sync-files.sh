#!/usr/bin/env bash
# Copy the files that the kustomize ConfigMap generators need into
# k8s/base/files/ (kustomize only reads files below the kustomization root):
#   src/tradewind/storage/schema.sql                       -> files/schema.sql
#   infrastructure/monitoring/prometheus/rules/*.yml       -> files/rules/
#   infrastructure/monitoring/grafana/dashboards/*.json    -> files/dashboards/
#   infrastructure/monitoring/grafana/provisioning/...     -> files/grafana-*.yml
# Usage: sync-files.sh          write the copies
#        sync-files.sh --check  exit 1 if a committed copy is stale (CI)
# While schema.sql has not been generated yet, a placeholder that creates
# nothing stands in for it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
files="${here}/files"
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "${tmp}/rules" "${tmp}/dashboards"

schema="${root}/src/tradewind/storage/schema.sql"
if [[ -f "${schema}" ]]; then
  cp "${schema}" "${tmp}/schema.sql"
else
  cat > "${tmp}/schema.sql" <<'SQL'
-- PLACEHOLDER: src/tradewind/storage/schema.sql has not been generated yet.
-- Run `make k8s-sync` (k8s/base/sync-files.sh) once it exists; until then
-- PostgreSQL starts empty and the db-writer init container (`tradewind migrate`)
-- creates the schema.
SELECT 1;
SQL
fi
cp "${root}"/infrastructure/monitoring/prometheus/rules/*.yml "${tmp}/rules/"
cp "${root}"/infrastructure/monitoring/grafana/dashboards/*.json "${tmp}/dashboards/"
cp "${root}/infrastructure/monitoring/grafana/provisioning/datasources/prometheus.yml" \
   "${tmp}/grafana-datasource.yml"
cp "${root}/infrastructure/monitoring/grafana/provisioning/dashboards/tradewind.yml" \
   "${tmp}/grafana-dashboard-provider.yml"

if (( check )); then
  if ! diff -r "${tmp}" "${files}" >/dev/null 2>&1; then
    diff -r "${tmp}" "${files}" | head -20 >&2 || true
    echo "k8s/base/files/ is stale: run 'make k8s-sync' (k8s/base/sync-files.sh) and commit it" >&2
    exit 1
  fi
  echo "k8s/base/files/ is up to date"
else
  rm -rf "${files}"
  mkdir -p "${files}"
  cp -r "${tmp}/." "${files}/"
  echo "synced ${files}"
fi
