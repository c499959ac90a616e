#!/usr/bin/env bash
# Regenerates isobar's Rust types for Gateway API (src/crd/gateway/*.rs) from the pinned upstream CRD
# bundle in deploy/gateway-api, with kopium (the kube-rs project's CRD-to-Rust generator), the way the
# `gateway-api` crate generates its own. The crate itself can't be used: it is built on kube 4 and
# k8s-openapi 0.28, isobar on kube 5 and 0.29. Not part of CI: the output is committed, and only a new
# bundle (or kopium version) changes it.
#
# kopium is installed with cargo from the configured registry into the cache dir, once per version.
set -euo pipefail
cd "$(dirname "$0")/.."
KOPIUM_VERSION=0.24.1
CACHE=${ISOBAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/isobar}
KOPIUM_ROOT=$CACHE/kopium-$KOPIUM_VERSION
KOPIUM=$KOPIUM_ROOT/bin/kopium
if ! "$KOPIUM" --version 2>/dev/null | grep -qF "$KOPIUM_VERSION"; then
  cargo install --locked --quiet kopium --version "$KOPIUM_VERSION" --root "$KOPIUM_ROOT"
fi
BUNDLE=deploy/gateway-api/v1.5.1-standard-install.yaml
(cd deploy/gateway-api && sha256sum --quiet -c SHA256SUMS)
OUT=src/crd/gateway
mkdir -p "$OUT"

# One CRD of the bundle, by name, as its own YAML document.
crd() {
  python3 - "$BUNDLE" "$1" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "CustomResourceDefinition" and d["metadata"]["name"] == sys.argv[2]:
        print(yaml.safe_dump(d))
PY
}

# file, CRD name, version: the versions isobar reads (GatewayClass, Gateway, HTTPRoute, ReferenceGrant).
generated=()
for spec in gatewayclasses:v1 gateways:v1 httproutes:v1 referencegrants:v1; do
  plural=${spec%%:*} version=${spec##*:}
  crd "$plural.gateway.networking.k8s.io" \
    | "$KOPIUM" --schema=disabled --derive=Default --smart-derive-elision --derive=PartialEq --api-version "$version" -f - \
    > "$OUT/$plural.rs"
  generated+=("$OUT/$plural.rs")
done
rustfmt --edition 2021 "${generated[@]}"
echo "generated ${generated[*]} from $BUNDLE with kopium $KOPIUM_VERSION" >&2
