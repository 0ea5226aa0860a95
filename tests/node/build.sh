#!/usr/bin/env bash
# Build the real node's Go fixtures from the Go module proxy: containerd, ctr and the runc shim; the CNI
# reference plugins the node's default pod network needs; Multus' thin plugin. runc itself is Debian's
# package (built with seccomp, which containerd's default sandbox profile needs). Cached under
# ~/.cache/macvtapctl-testenv/node-<pins>/; rebuilt only when pins.env changes. Prints that directory last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pins.env
. "$here/pins.env"
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
out="$cache/node-containerd-${CONTAINERD_VERSION}_plugins-${CNI_PLUGINS_VERSION}_multus-${MULTUS_VERSION}"
BINARIES="containerd ctr containerd-shim-runc-v2 bridge loopback host-local ptp multus"
missing() { need=(); for b in $BINARIES; do [ -x "$out/$b" ] || need+=("$b"); done; }
# shellcheck source=../buildsteps.sh
. "$here/../buildsteps.sh"
missing
if [ ${#need[@]} -eq 0 ]; then cached $BINARIES; echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.node-lock"
flock 9
missing
if [ ${#need[@]} -eq 0 ]; then cached $BINARIES; echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "error: go is required to build the test node (${need[*]})" >&2; exit 1; }
mkdir -p "$out"
export BUILD_LOG="$out/build.log"
say "node (containerd $CONTAINERD_VERSION, plugins $CNI_PLUGINS_VERSION, multus $MULTUS_VERSION): building ${need[*]}; the Go tool's output in $BUILD_LOG"
for b in $BINARIES; do case " ${need[*]} " in *" $b "*) ;; *) cached "$b";; esac; done
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
# build MODULE VERSION BINARY PACKAGE [LDFLAGS]: one wrapper module per upstream module.
build() {
  local mod=$1 ver=$2 bin=$3 pkg=$4 ld=${5:-}
  case " ${need[*]} " in *" $bin "*) ;; *) return 0;; esac
  local dir="$work/$(echo "$mod" | tr '/.' '__')"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir" && (cd "$dir" && go mod init local/nodetools >/dev/null 2>&1 \
      && fetch "$mod $ver modules" go get "$mod@$ver")
  fi
  (cd "$dir" && quietly go get "$pkg@$ver" && step "$bin" go build -trimpath -ldflags "-s -w $ld" -o "$out/$bin.tmp" "$pkg")
  mv "$out/$bin.tmp" "$out/$bin"
}
cd=github.com/containerd/containerd/v2
cdld="-X $cd/version.Version=$CONTAINERD_VERSION"
build $cd "$CONTAINERD_VERSION" containerd $cd/cmd/containerd "$cdld"
build $cd "$CONTAINERD_VERSION" ctr $cd/cmd/ctr "$cdld"
build $cd "$CONTAINERD_VERSION" containerd-shim-runc-v2 $cd/cmd/containerd-shim-runc-v2 "$cdld"
pl=github.com/containernetworking/plugins
build $pl "$CNI_PLUGINS_VERSION" bridge $pl/plugins/main/bridge
build $pl "$CNI_PLUGINS_VERSION" ptp $pl/plugins/main/ptp
build $pl "$CNI_PLUGINS_VERSION" loopback $pl/plugins/main/loopback
build $pl "$CNI_PLUGINS_VERSION" host-local $pl/plugins/ipam/host-local
mu=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
build $mu "$MULTUS_VERSION" multus $mu/cmd/multus
build_done node
echo "$out"
