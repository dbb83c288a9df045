#!/usr/bin/env bash
# Sourced by .ci/container_checks.sh and .ci/compose_checks.sh: the podman
# flags this sandbox needs, the names of the CI images, and the Debian base.
# shellcheck disable=SC2034  # the variables are used by the scripts sourcing this

CI_SUITE="bookworm"
CI_MIRROR="${TRADEWIND_CI_MIRROR:-http://deb.debian.org/debian}"
CI_BASE_PACKAGES="ca-certificates,python3,python3-venv"
CI_ROOTFS_IMAGE="localhost/tradewind-ci/rootfs:${CI_SUITE}"
CI_PYTHON_BASE="localhost/tradewind-ci/python:3.11-${CI_SUITE}"
CI_IMAGE="localhost/tradewind:ci"
CI_CACHE="${TRADEWIND_CI_CACHE:-/var/cache/tradewind-ci}"

# No systemd and cgroup v1 here: runc with cgroupfs. Host network for builds
# (no CNI bridge is needed to reach the package mirrors). Explicit nofile and
# nproc limits: the sandbox withholds CAP_SYS_RESOURCE, and podman's defaults
# (its own raised maximum) exceed the hard limits runc may set.
nofile="$(ulimit -Hn)"
[[ "${nofile}" == "unlimited" || "${nofile}" -gt 65536 ]] && nofile=65536
pm_global=(--runtime runc --cgroup-manager cgroupfs)
ulimits=(--ulimit "nofile=${nofile}:${nofile}" --ulimit "nproc=4096:4096")
build_flags=(--network=host "${ulimits[@]}" --layers)
pm() { podman "${pm_global[@]}" "$@"; }

# A rootfs from Debian packages, imported as an image, plus the CA bundle this
# machine trusts (its outbound TLS may go through an inspecting proxy): the
# stand-in for the official python image. The tarball is cached when CI_CACHE
# is writable (keyed by suite, package list and the month: point releases).
build_ci_base() {
  local ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" ctx
  if ! pm image exists "${CI_ROOTFS_IMAGE}"; then
    import_rootfs || return 1
  fi
  ctx="$(mktemp -d)"
  cp "${ca}" "${ctx}/ca-certificates.crt"
  printf 'FROM %s\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n' "${CI_ROOTFS_IMAGE}" >"${ctx}/Containerfile"
  pm build "${build_flags[@]}" -q -t "${CI_PYTHON_BASE}" "${ctx}" >/dev/null
  rm -rf "${ctx}"
  echo "base ${CI_PYTHON_BASE}: ready"
}

import_rootfs() {
  local key tarball rootfs t0
  t0=$(date +%s)
  key="$(printf '%s %s %s' "${CI_SUITE}" "${CI_BASE_PACKAGES}" "$(date +%Y-%m)" | sha256sum | cut -c1-12)"
  tarball="${CI_CACHE}/rootfs-${CI_SUITE}-${key}.tar"
  if [[ ! -s "${tarball}" ]]; then
    mkdir -p "${CI_CACHE}" 2>/dev/null || true
    [[ -w "${CI_CACHE}" ]] || tarball="$(mktemp -u)-rootfs.tar"
    rootfs="$(mktemp -d)"
    debootstrap --variant=minbase --include="${CI_BASE_PACKAGES}" "${CI_SUITE}" "${rootfs}" "${CI_MIRROR}" \
      >"${rootfs}.log" 2>&1 || { tail -20 "${rootfs}.log"; echo "debootstrap FAILED" >&2; return 1; }
    # Security updates for anything installed later with apt in the CI images.
    cat >"${rootfs}/etc/apt/sources.list" <<EOF
deb ${CI_MIRROR} ${CI_SUITE} main
deb ${CI_MIRROR} ${CI_SUITE}-updates main
deb ${CI_MIRROR%/debian}/debian-security ${CI_SUITE}-security main
EOF
    rm -rf "${rootfs}/var/cache/apt/archives/"*.deb "${rootfs}/var/lib/apt/lists/"*
    tar -C "${rootfs}" -cf "${tarball}.part" . && mv "${tarball}.part" "${tarball}"
    rm -rf "${rootfs}" "${rootfs}.log"
  fi
  pm import --change 'CMD ["/bin/bash"]' "${tarball}" "${CI_ROOTFS_IMAGE}" >/dev/null 2>&1
  [[ "${tarball}" == "${CI_CACHE}"/* ]] || rm -f "${tarball}"
  echo "rootfs ${CI_ROOTFS_IMAGE}: Debian ${CI_SUITE} packages, debootstrap + import in $(( $(date +%s) - t0 )) s"
}
