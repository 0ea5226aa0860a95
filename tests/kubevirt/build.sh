#!/usr/bin/env bash
# Build kvfixture (tests/kubevirt/main.go) against kubevirt.io/kubevirt at an exact, pinned version from the Go
# module proxy, and gather the CRDs the local control plane installs:
#   kubevirt.crds.yaml   printed by KubeVirt's own virt-operator code (components.New*Crd)
#   nad.crd.yaml         from github.com/k8snetworkplumbingwg/network-attachment-definition-client (artifacts/)
#   cnao.crd.yaml        from github.com/kubevirt/cluster-network-addons-operator (manifests/)
# Usage: build.sh [KUBEVIRT_VERSION]  (default: the newest pin). Cached under
# ~/.cache/macvtapctl-testenv/kubevirt-<version>_nad-<v>_cnao-<v>/; prints that directory on its last line.
#
# kubevirt.io/kubevirt requires its staging modules (kubevirt.io/api, kubevirt.io/client-go) at v0.0.0 and
# maps them, and pins k8s.io/* and a few others, with replace directives, which only count in the main
# module; so the wrapper module repeats its replace block (read from the release's own go.mod, never
# hard-coded), mapping the staging modules to their published tags of the same version (v1.5 also keeps a fork
# of glog in staging, which is not published: the glog release its go.mod requires stands in for it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../controlplane/pins.env
. "$here/../controlplane/pins.env"
version=${1:-${KUBEVIRT_PINS##* }}
case " $KUBEVIRT_PINS " in *" $version "*) ;; *)
  echo "error: KubeVirt $version is not pinned (pinned: $KUBEVIRT_PINS; tests/controlplane/pins.env)" >&2; exit 2;;
esac
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
out="$cache/kubevirt-${version}_nad-${NAD_CLIENT_VERSION}_cnao-${CNAO_VERSION}"
src_sum=$(sha256sum "$here/main.go" | cut -c1-16)
ready() { [ -x "$out/kvfixture" ] && [ -s "$out/kubevirt.crds.yaml" ] && [ -s "$out/nad.crd.yaml" ] \
  && [ -s "$out/cnao.crd.yaml" ] && [ "$(cat "$out/main.go.sum" 2>/dev/null)" = "$src_sum" ]; }
# shellcheck source=../buildsteps.sh
. "$here/../buildsteps.sh"
if ready; then cached "KubeVirt $version fixture"; echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.lock-kubevirt"
flock 9
if ready; then cached "KubeVirt $version fixture"; echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "error: go is required to build the KubeVirt fixture" >&2; exit 1; }
mkdir -p "$out"
export BUILD_LOG="$out/build.log"
: > "$BUILD_LOG"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
cd "$work"
go mod init local/kvfixture >/dev/null 2>&1
go mod edit -go=1.26
cp "$here/main.go" .
moddir() { (cd "$(mktemp -d)" && go mod download -json "$1" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d.get("Dir") or sys.exit(d.get("Error")))'); }
modfile=$(cd "$(mktemp -d)" && go mod download -json "kubevirt.io/kubevirt@$version" \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
go mod edit -json "$modfile" | python3 -c '
import json, sys
v = sys.argv[1]
mod = json.load(sys.stdin)
required = {r["Path"]: r["Version"] for r in mod.get("Require") or []}
for r in mod.get("Replace") or []:
    old, new = r["Old"]["Path"], r["New"]
    if not new["Path"].startswith("./staging/"):
        print("-replace=%s=%s@%s" % (old, new["Path"], new["Version"]))
    elif old.startswith("kubevirt.io/"):  # its own staging modules: their published tag of this release
        print("-replace=%s=%s@%s" % (old, old, v))
    else:  # a vendored fork of a third-party module (v1.5: glog): the release it requires
        print("-replace=%s=%s@%s" % (old, old, required[old]))
' "$version" | xargs go mod edit
go mod edit -require="kubevirt.io/kubevirt@$version"
# Seed go.sum with the release's own: the hashes its maintainers recorded verify modules the checksum database
# does not list (v1.8: github.com/rhobs/operator-observability-toolkit v0.0.30, a 404 there).
cp "$(moddir "kubevirt.io/kubevirt@$version")/go.sum" go.sum
chmod u+w go.sum
# -e: test-only imports of dependencies need not resolve (not built)
fetch "KubeVirt $version modules" go mod tidy -e
step "KubeVirt $version fixture (CRDs, admission)" \
  go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/kvfixture.tmp" .
mv "$out/kvfixture.tmp" "$out/kvfixture"
"$out/kvfixture" crds > "$out/kubevirt.crds.yaml"
cp "$(moddir "github.com/k8snetworkplumbingwg/network-attachment-definition-client@$NAD_CLIENT_VERSION")/artifacts/networks-crd.yaml" \
  "$out/nad.crd.yaml"
cp "$(moddir "github.com/kubevirt/cluster-network-addons-operator@$CNAO_VERSION")/manifests/cluster-network-addons/${CNAO_VERSION#v}/network-addons-config.crd.yaml" \
  "$out/cnao.crd.yaml"
chmod u+w "$out"/*.yaml
echo "$src_sum" > "$out/main.go.sum"
build_done "KubeVirt $version fixture"
echo "$out"
