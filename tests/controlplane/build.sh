#!/usr/bin/env bash
# Build kube-apiserver, etcd and cnitool from the Go module proxy (CGO off), cached
# under ~/.cache/macvtapctl-testenv/<pins>/. Rebuilt only when the pins change.
# Recipe and traps: see docs/development.md (derived from the k8s staging replace trick).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pins.env
. "$here/pins.env"
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
key="k8s-${KUBE_VERSION}_cni-${CNI_VERSION}"
out="$cache/$key"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] && [ -x "$out/cnitool" ]; then
  echo "$out"; exit 0
fi
command -v go >/dev/null || { echo "error: go is required to build the test control plane" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
staging="v0.${KUBE_VERSION#v1.}"
(
  cd "$work"
  mkdir kube && cd kube
  go mod init local/kubetools >/dev/null 2>&1
  go mod edit -go=1.26 -godebug=default=go1.26
  # Replace every staging module (required at v0.0.0 upstream) with its published tag.
  modfile=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for p in $(go mod edit -json "$modfile" | python3 -c 'import json,sys;print("\n".join(r["Path"] for r in json.load(sys.stdin)["Require"] if r["Version"]=="v0.0.0"))'); do
    go mod edit -replace="$p=$p@$staging"
  done
  go get "k8s.io/kubernetes@$KUBE_VERSION" >&2
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >&2
  ev=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  go get "go.etcd.io/etcd/server/v3@$ev" >&2
  ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  go build -trimpath -ldflags "$ld" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
  go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3 >&2
  echo "$ev" > "$out/etcd.version"
)
(
  cd "$work" && mkdir cni && cd cni
  go mod init local/cnitools >/dev/null 2>&1
  go get "github.com/containernetworking/cni@$CNI_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$out/cnitool" github.com/containernetworking/cni/cnitool >&2
)
echo "$out"
