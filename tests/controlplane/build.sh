#!/usr/bin/env bash
# Build the Go-built test fixtures from the Go module proxy (CGO off): kube-apiserver, etcd (the version
# that Kubernetes release pins), kubectl, cnitool, and the node's kubelet, kube-scheduler and
# kube-controller-manager and kube-proxy (same Kubernetes pin, same wrapper module). Cached under ~/.cache/macvtapctl-testenv/<pins>/;
# rebuilt only when pins.env changes. Prints the directory holding the binaries on its last line.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them with replace directives, which
# only count in the main module; so we build in a throwaway wrapper module that replaces each staging
# module with its published v0.N.P tag (derived from the release's own go.mod, never hard-coded).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pins.env
. "$here/pins.env"
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
out="$cache/k8s-${KUBE_VERSION}_cni-${CNI_VERSION}"
BINARIES="kube-apiserver etcd kubectl cnitool kubelet kube-scheduler kube-controller-manager kube-proxy"
need=()
for b in $BINARIES; do [ -x "$out/$b" ] || need+=("$b"); done
# shellcheck source=../buildsteps.sh
. "$here/../buildsteps.sh"
if [ ${#need[@]} -eq 0 ]; then cached $BINARIES; echo "$out"; exit 0; fi
# One build at a time (pytest and make may both ask); the second waits, then finds the binaries.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
need=()
for b in $BINARIES; do [ -x "$out/$b" ] || need+=("$b"); done
if [ ${#need[@]} -eq 0 ]; then cached $BINARIES; echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "error: go is required to build the test control plane (${need[*]})" >&2; exit 1; }
mkdir -p "$out"
export BUILD_LOG="$out/build.log"
say "control plane (Kubernetes $KUBE_VERSION, cni $CNI_VERSION): building ${need[*]}; the Go tool's output in $BUILD_LOG"
for b in $BINARIES; do case " ${need[*]} " in *" $b "*) ;; *) cached "$b";; esac; done
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
wants() { case " ${need[*]} " in *" $1 "*) return 0;; esac; return 1; }
if wants kube-apiserver || wants etcd || wants kubectl || wants kubelet || wants kube-scheduler \
  || wants kube-controller-manager || wants kube-proxy; then
(
  cd "$work" && mkdir kube && cd kube
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  staging="v0.${KUBE_VERSION#v1.}"
  go mod init local/kubetools >/dev/null 2>&1
  go mod edit -go=1.26 -godebug=default=go1.26
  modfile=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for p in $(go mod edit -json "$modfile" \
    | python3 -c 'import json,sys;print("\n".join(r["Path"] for r in json.load(sys.stdin)["Require"] if r["Version"]=="v0.0.0"))'); do
    go mod edit -replace="$p=$p@$staging"
  done
  fetch "Kubernetes $KUBE_VERSION modules" go get "k8s.io/kubernetes@$KUBE_VERSION" \
    "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION" \
    "k8s.io/kubernetes/cmd/kubelet@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kube-scheduler@$KUBE_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kube-proxy@$KUBE_VERSION"
  ev=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  fetch "etcd $ev modules" go get "go.etcd.io/etcd/server/v3@$ev"
  ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  for b in kube-apiserver kubelet kube-scheduler kube-controller-manager kube-proxy; do
    wants "$b" || continue
    step "$b" go build -trimpath -ldflags "$ld" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$out/$b.tmp" "$out/$b"
  done
  if wants etcd; then
    step etcd go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$out/etcd.tmp" "$out/etcd"; echo "$ev" > "$out/etcd.version"
  fi
  if wants kubectl; then
    ldc="$ld -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    step kubectl go build -trimpath -ldflags "$ldc" -o "$out/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$out/kubectl.tmp" "$out/kubectl"
  fi
)
fi
if wants cnitool; then
(
  cd "$work" && mkdir cni && cd cni
  go mod init local/cnitools >/dev/null 2>&1
  quietly go get "github.com/containernetworking/cni@$CNI_VERSION"
  step cnitool go build -trimpath -ldflags "-s -w" -o "$out/cnitool.tmp" github.com/containernetworking/cni/cnitool
  mv "$out/cnitool.tmp" "$out/cnitool"
)
fi
build_done "control plane"
echo "$out"
