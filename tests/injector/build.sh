#!/usr/bin/env bash
# Build network-resources-injector's webhook (cmd/webhook) at the pinned release (NRI_VERSION in
# tests/controlplane/pins.env) from the Go module proxy, unmodified: the binary behind install --injector's default
# image, run as a process by tests/integration/test_injector.py. Cached under
# ~/.cache/macvtapctl-testenv/injector-<version>/; prints that directory on its last line.
#
# `go install module/cmd/webhook@version` would need the proxy's version list (refused here), so a wrapper module
# requires the exact release and builds its package; the release's own go.sum is its checksums.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../controlplane/pins.env
. "$here/../controlplane/pins.env"
version=$NRI_VERSION
module=github.com/k8snetworkplumbingwg/network-resources-injector
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
out="$cache/injector-$version"
ready() { [ -x "$out/webhook" ]; }
# shellcheck source=../buildsteps.sh
. "$here/../buildsteps.sh"
if ready; then cached "network-resources-injector $version"; echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.lock-injector"
flock 9
if ready; then cached "network-resources-injector $version"; echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "error: go is required to build network-resources-injector" >&2; exit 1; }
mkdir -p "$out"
export BUILD_LOG="$out/build.log"
: > "$BUILD_LOG"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
cd "$work"
go mod init local/nri >/dev/null 2>&1
go mod edit -go=1.26 -require="$module@$version"
dir=$(cd "$(mktemp -d)" && go mod download -json "$module@$version" \
  | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d.get("Dir") or sys.exit(d.get("Error")))')
cp "$dir/go.sum" go.sum
chmod u+w go.sum
step "network-resources-injector $version" \
  go build -trimpath -ldflags "-s -w" -o "$out/webhook.tmp" "$module/cmd/webhook"
mv "$out/webhook.tmp" "$out/webhook"
build_done "network-resources-injector $version"
echo "$out"
