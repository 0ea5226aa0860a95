#!/usr/bin/env bash
# `make image`: build the Containerfile with buildah into build/agent-image.tar (an OCI archive), then run the
# image's `macvtapctl --help` and `agent --install-cni DIR --install-only` in it and report its size.
#   BASE=docker.io/library/python:3.11-slim make image   where a registry is reachable
#   make image                                         otherwise: a Debian bookworm base bootstrapped here with
#                                                      mmdebstrap (python3, pip, gcc, make), cached
# IMAGE_REF names the image (default localhost/macvtapctl/agent:dev). Multi-arch stays documented, not built.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ref=${IMAGE_REF:-localhost/macvtapctl/agent:dev}
out=${IMAGE_OUT:-$repo/build/agent-image.tar}
command -v buildah >/dev/null || { echo "error: buildah is required (apt-get install buildah)" >&2; exit 1; }
bah=(buildah --storage-driver vfs)  # vfs: works without overlay support or fuse
cache=${MACVTAPCTL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/macvtapctl-testenv}
base=${BASE:-}
if [ -z "$base" ]; then
  packages=python3,python3-pip,gcc,libc6-dev,make
  tar="$cache/containerfile-base-bookworm-$(echo "$packages" | sha256sum | cut -c1-12).tar"
  base=localhost/macvtapctl/base:bookworm
  if [ ! -s "$tar" ]; then
    command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is required for the local base" >&2; exit 1; }
    mkdir -p "$cache"
    mmdebstrap --variant=minbase --mode=root --format=tar --quiet --include="$packages" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$tar.tmp" >&2
    mv "$tar.tmp" "$tar"
  fi
  if ! "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
    ctr=$("${bah[@]}" from scratch)
    "${bah[@]}" add "$ctr" "$tar" / >/dev/null
    "${bah[@]}" commit --quiet "$ctr" "$base" >/dev/null
    "${bah[@]}" rm "$ctr" >/dev/null
  fi
fi
# Behind a TLS-intercepting egress proxy pip must trust its CA: mount the host's bundle into the build.
ca=()
bundle=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [ -n "$bundle" ] && [ -s "$bundle" ]; then
  ca=(--volume "$bundle:/etc/ssl/host-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/host-ca.crt)
fi
"${bah[@]}" bud --quiet --isolation chroot --network host "${ca[@]}" --build-arg "BASE=$base" \
  -f "$repo/Containerfile" -t "$ref" "$repo" >&2
mkdir -p "$(dirname "$out")"
rm -f "$out"
"${bah[@]}" push --quiet "$ref" "oci-archive:$out:$ref" >&2
# Run it: the entrypoint's --help, and the shim install the DaemonSet's first step does.
ctr=$("${bah[@]}" from --quiet "$ref")
trap '"${bah[@]}" rm "$ctr" >/dev/null' EXIT
"${bah[@]}" run --isolation chroot "$ctr" -- macvtapctl --help | grep -q "doctor"
"${bah[@]}" run --isolation chroot "$ctr" -- macvtapctl agent --install-cni /tmp/cni-bin --install-only >&2
"${bah[@]}" run --isolation chroot "$ctr" -- test -x /tmp/cni-bin/macvtap
echo "$out ($(du -m "$out" | cut -f1) MiB): $ref; ran --help and agent --install-only in it"
