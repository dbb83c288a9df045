#!/usr/bin/env bash
# First start on an empty data volume: initdb with the password from
# POSTGRES_PASSWORD_FILE, create POSTGRES_DB, run the init scripts on a
# socket-only server; then (every start) exec the server on all addresses.
set -euo pipefail
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=${POSTGRES_USER}}"
# /tmp, not /var/run/postgresql: podman (4.3) ignores the mode of a tmpfs under
# the /var/run symlink, so uid 999 cannot write the socket there.
sock=/tmp
if [[ "${1:-}" == "postgres" && ! -s "${PGDATA}/PG_VERSION" ]]; then
  pwfile="$(mktemp)"
  cat "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE is required}" >"${pwfile}"
  initdb -D "${PGDATA}" -U "${POSTGRES_USER}" --pwfile="${pwfile}" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "${pwfile}"
  echo "host all all all scram-sha-256" >>"${PGDATA}/pg_hba.conf"
  pg_ctl -D "${PGDATA}" -o "-c listen_addresses='' -k ${sock}" -w start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 -q -h "${sock}" -U "${POSTGRES_USER}")
  if [[ "${POSTGRES_DB}" != "postgres" ]]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE \"${POSTGRES_DB}\""
  fi
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [[ -e "${f}" ]] && "${psql[@]}" -d "${POSTGRES_DB}" -f "${f}"
  done
  pg_ctl -D "${PGDATA}" -m fast -w stop >/dev/null
  echo "initialised ${PGDATA} (user ${POSTGRES_USER}, database ${POSTGRES_DB})"
fi
if [[ "${1:-}" == "postgres" ]]; then
  shift
  exec postgres -D "${PGDATA}" -c listen_addresses='*' -k "${sock}" "$@"
fi
exec "$@"
