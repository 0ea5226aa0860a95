#!/usr/bin/env bash
# Build KubeVirt's own runtime at a pinned release from the Go module proxy and Debian's packages, with no
# container registry, no docker and no bazel: the binaries upstream's five images carry, and the images themselves
# as OCI archives that `ctr -n k8s.io images import` reads, named so that virt-operator finds them with
# `imageRegistry: localhost/kubevirt` and `imageTag: <version>` (localhost/kubevirt/virt-operator:<version>, ...),
# and kubevirt-operator.yaml, upstream's release manifest of virt-operator for those images.
#   Usage: build.sh [VERSION]   (default: KUBEVIRT_RUNTIME_VERSION in tests/controlplane/pins.env, v1.7.0)
# Cached under ~/.cache/macvtapctl-testenv/kubevirt-runtime-<version>-<hash of the recipe files>/, prints that
# directory on its last line. The Debian root filesystems are cached on their own, by suite and package list
# (tests/harness/kubevirt_images.py). Facts and sources: /work/shared/research/kubevirt-runtime.md.
#
# The source is the module zip of kubevirt.io/kubevirt, which has no vendor/ and no staging/ but a go.work that
# points into staging/: so a writable copy without go.work, with its staging modules (kubevirt.io/api,
# kubevirt.io/client-go) replaced by their published tags of the same release. Flags as upstream's no-bazel path
# (hack/build-go.sh, hack/common.sh, hack/version.sh): -tags selinux, the version stamps; static pure-Go binaries
# where BUILD.bazel says static = "on", cgo for virt-handler (node-labeller's <linux/kvm.h>), virt-chroot and
# virt-launcher (runc's userns); container-disk is C, `gcc -static`, as it runs in FROM-scratch disk images.
# virt-launcher's libvirt binding (libvirt.org/go/libvirt) is built with -tags libvirt_dlopen: it then needs no
# libvirt headers or library on the build host and dlopens libvirt.so.0 at run time, from the launcher image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../controlplane/pins.env
. "$here/../../controlplane/pins.env"
# KUBEVIRT_RUNTIME_VERSION (pins.env): v1.8.x imports libguestfs.org/libnbd, which the Go module proxy refuses
# (403), and v1.8.0's virt-handler cannot run emulated VMs; v1.5.1 is pinned for the API fixture only.
version=${1:-${KUBEVIRT_RUNTIME_VERSION:-v1.7.0}}
case " $KUBEVIRT_PINS " in *" $version "*) ;; *)
  echo "error: KubeVirt $version is not pinned (pinned: $KUBEVIRT_PINS; tests/controlplane/pins.env)" >&2; exit 2;;
esac
if [ "$version" != "${KUBEVIRT_RUNTIME_VERSION:-v1.7.0}" ]; then
  echo "warning: KubeVirt's runtime is built and checked here at ${KUBEVIRT_RUNTIME_VERSION:-v1.7.0} only;" \
    "trying $version" >&2
fi
REGISTRY=localhost/kubevirt  # kubevirt_images.py's REGISTRY: the names the images carry
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
# Any change to how the runtime is built makes a new directory (kubevirt_images.py imports the node images' writer).
harness=$(cd "$here/../../harness" && pwd)
recipe=$(cat "$here/build.sh" "$harness/kubevirt_images.py" "$harness/images.py" | sha256sum | cut -c1-12)
out="$cache/kubevirt-runtime-$version-$recipe"
# NAME PACKAGE CGO_ENABLED TAGS, in build order (the pure-Go ones first: they share most packages).
GO_BUILDS=(
  "virt-operator cmd/virt-operator 0 selinux"
  "virt-api cmd/virt-api 0 selinux"
  "virt-controller cmd/virt-controller 0 selinux"
  "virt-launcher-monitor cmd/virt-launcher-monitor 0 selinux"
  "virt-probe cmd/virt-probe 0 selinux"
  "virt-tail cmd/virt-tail 0 selinux"
  "virt-freezer cmd/virt-freezer 0 selinux"
  "csv-generator tools/csv-generator 0 selinux"
  "virt-handler cmd/virt-handler 1 selinux"
  "virt-chroot cmd/virt-chroot 1 selinux"
  "virt-launcher cmd/virt-launcher 1 selinux,libvirt_dlopen"
  "manifest-templator tools/manifest-templator 0 selinux"
)
GO_BINARIES=$(printf '%s\n' "${GO_BUILDS[@]}" | cut -d' ' -f1)
BINARIES="$GO_BINARIES container-disk"
IMAGES="virt-operator virt-api virt-controller virt-handler virt-launcher"
# virt-operator's Deployment and RBAC and the KubeVirt CRD, as upstream's release kubevirt-operator.yaml, with
# VIRT_OPERATOR_IMAGE=localhost/kubevirt/virt-operator:<version> (hack/build-manifests.sh, KUBEVIRT_NO_BAZEL=true).
MANIFEST=kubevirt-operator.yaml
missing() {
  need=(); need_manifest=(); for b in $BINARIES; do [ -x "$out/bin/$b" ] || need+=("$b"); done
  need_images=(); for i in $IMAGES; do [ -s "$out/$i.tar" ] || need_images+=("$i"); done
  [ -s "$out/$MANIFEST" ] || need_manifest=("$MANIFEST")
}
needed() { case " ${need[*]} ${need_images[*]} ${need_manifest[*]} " in *" $1 "*) return 0;; esac; return 1; }
all_cached() {
  cached $BINARIES; for i in $IMAGES; do cached "$i image"; done; cached "$MANIFEST"
  echo "$out"; exit 0
}
none_missing() { [ ${#need[@]} -eq 0 ] && [ ${#need_images[@]} -eq 0 ] && [ ${#need_manifest[@]} -eq 0 ]; }
# shellcheck source=../../buildsteps.sh
. "$here/../../buildsteps.sh"
missing
none_missing && all_cached
mkdir -p "$cache"
exec 9>"$cache/.lock-kubevirt-runtime"
flock 9
missing
none_missing && all_cached
for tool in go gcc python3; do
  command -v $tool >/dev/null || { echo "error: $tool is required to build the KubeVirt runtime" >&2; exit 1; }
done
mkdir -p "$out/bin"
export BUILD_LOG="$out/build.log"
: > "$BUILD_LOG"
say "KubeVirt $version runtime: building ${need[*]} ${need_images[*]/%/ image} ${need_manifest[*]};" \
  "the tools' output in $BUILD_LOG"
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOWORK=off
# From / : outside any module, so that no go.mod or go.work around the caller applies.
info=$(cd / && go mod download -json "kubevirt.io/kubevirt@$version")
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$info" "$1"; }
moddir=$(field Dir)
# The release's own stamps, from the proxy's record of the tag: the same bytes on every build.
commit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Origin"]["Hash"])' "$(field Info)")
date=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Time"])' "$(field Info)")
vpkg=kubevirt.io/client-go/version
ld="-s -w -X $vpkg.gitVersion=$version -X $vpkg.gitCommit=$commit -X $vpkg.gitTreeState=clean"
ld+=" -X $vpkg.buildDate=$date"
# A binary built now makes every image older than it: rebuild them all (each takes seconds once its base exists).
if [ ${#need[@]} -gt 0 ]; then
  rm -f "$out"/*.tar "$out/$MANIFEST"
  missing
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  cp -r "$moddir" "$work/src"
  chmod -R u+w "$work/src"
  cd "$work/src"
  rm -f go.work go.work.sum
  go mod edit -replace "kubevirt.io/api=kubevirt.io/api@$version" \
    -replace "kubevirt.io/client-go=kubevirt.io/client-go@$version"
  # shellcheck disable=SC2046  # a list of packages
  step "KubeVirt $version runtime modules (download)" \
    go list -deps -tags selinux,libvirt_dlopen $(printf '%s\n' "${GO_BUILDS[@]}" | awk '{print "./" $2}')
  for b in "${GO_BUILDS[@]}"; do
    read -r name pkg cgo tags <<< "$b"
    if ! needed "$name"; then cached "$name"; continue; fi
    step "$name" env CGO_ENABLED="$cgo" go build -trimpath -tags "$tags" -ldflags "$ld" -o "$out/bin/$name.tmp" "./$pkg"
    mv "$out/bin/$name.tmp" "$out/bin/$name"
  done
  if needed container-disk; then
    # exactly hack/build-go.sh's line
    step container-disk gcc -static -o "$out/bin/container-disk.tmp" cmd/container-disk-v2alpha/main.c
    mv "$out/bin/container-disk.tmp" "$out/bin/container-disk"
  else
    cached container-disk
  fi
  cd "$here"
else
  cached $BINARIES
fi
images=(env -C "$here/../../.." python3 -m tests.harness.kubevirt_images)
# The infra images take their CA certificates from the handler's root filesystem.
for base in handler launcher; do
  [ ${#need_images[@]} -gt 0 ] || break  # only the manifest to write
  if [ -s "$("${images[@]}" rootfs-path $base)" ]; then cached "virt-$base rootfs"
  else step "virt-$base rootfs ($("${images[@]}" rootfs-suite $base), mmdebstrap)" "${images[@]}" rootfs $base; fi
done
for i in $IMAGES; do
  if ! needed "$i"; then cached "$i image"; continue; fi
  step "$i image" "${images[@]}" image "$i" --version "$version" --bin "$out/bin" --src "$moddir" --out "$out"
done
# manifest: upstream's two passes of manifest-templator over manifests/release/kubevirt-operator.yaml.in (each
# command checked: `step` runs it as a condition, where set -e does not apply)
manifest() {
  local t=$out/bin/manifest-templator tmp=$out/$MANIFEST.tmp
  "$t" --process-files --generated-manifests-dir="$moddir/manifests/generated/" \
    --input-file="$moddir/manifests/release/$MANIFEST.in" > "$tmp.in" || return
  "$t" --process-vars --container-prefix="$REGISTRY" --container-tag="$version" --namespace=kubevirt \
    --image-pull-policy=IfNotPresent --verbosity=2 --kubevirt-logo-path="$moddir/assets/kubevirt_logo.png" \
    --input-file="$tmp.in" > "$tmp" || return
  rm "$tmp.in" && mv "$tmp" "$out/$MANIFEST"
}
if needed "$MANIFEST"; then step "$MANIFEST" manifest; else cached "$MANIFEST"; fi
build_done "KubeVirt $version runtime"
echo "$out"
