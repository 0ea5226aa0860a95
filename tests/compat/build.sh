#!/usr/bin/env bash
# Build the real upstream kubevirt/macvtap-cni (CNI plugin and device plugin) from the vendored source tarball in
# ../shared/upstream, offline (-mod=vendor), into a cache keyed by the tarball's hash. Prints the bin directory.
# Only `make compat` uses this: a clone without ../shared still passes `make test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tarball="${MACVTAPCTL_UPSTREAM_TARBALL:-$(ls "$here"/../../../shared/upstream/macvtap-cni-*.tar.gz 2>/dev/null | head -1)}"
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
  echo "error: upstream macvtap-cni source not found (expected ../shared/upstream/macvtap-cni-*.tar.gz beside the" \
       "repository, or MACVTAPCTL_UPSTREAM_TARBALL)" >&2
  exit 1
fi
key="$(sha256sum "$tarball" | cut -c1-16)"
out="${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv/upstream-macvtap-cni-$key"
if [ -x "$out/bin/macvtap" ] && [ -x "$out/bin/macvtap-deviceplugin" ]; then
  echo "$out/bin"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
src="$(find "$work" -maxdepth 2 -name go.mod -printf '%h\n' | head -1)"
mkdir -p "$out/bin.tmp"
( cd "$src" && export CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off &&
  go build -o "$out/bin.tmp/macvtap" ./cmd/cni >&2 &&
  go build -o "$out/bin.tmp/macvtap-deviceplugin" ./cmd/deviceplugin >&2 )
rm -rf "$out/bin" && mv "$out/bin.tmp" "$out/bin"
echo "$out/bin"
