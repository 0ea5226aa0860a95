#!/usr/bin/env bash
# Build krew (sigs.k8s.io/krew, pinned in tests/controlplane/pins.env) and its manifest validator from the Go
# module proxy; cached beside the control plane. Prints the directory holding both on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../controlplane/pins.env
. "$here/../controlplane/pins.env"
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
out="$cache/krew-$KREW_VERSION"
if [ -x "$out/kubectl-krew" ] && [ -x "$out/validate-krew-manifest" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.lock-krew"
flock 9
if [ -x "$out/kubectl-krew" ] && [ -x "$out/validate-krew-manifest" ]; then echo "$out"; exit 0; fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
cd "$work"
go mod init local/krewtools >/dev/null 2>&1
go get "sigs.k8s.io/krew@$KREW_VERSION" >&2
mkdir -p "$out"
go build -trimpath -ldflags "-s -w" -o "$out/kubectl-krew" sigs.k8s.io/krew/cmd/krew >&2
go build -trimpath -ldflags "-s -w" -o "$out/validate-krew-manifest" sigs.k8s.io/krew/cmd/validate-krew-manifest >&2
echo "$out"
