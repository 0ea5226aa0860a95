"""upstream macvtap-cni on the real node, as its release deploys it: the image built from ../shared/upstream's
source, templates/macvtap.yaml.in rendered with its values (nothing else changed). Only `make compat` uses it."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

from tests.harness.cluster import CAPACITY, LOWER, NAD_MTU, NETWORK, Cluster, wait_for
from tests.harness.images import _layer, write_oci_archive
from tests.harness.paths import REPO
from tests.harness.upstream import build_upstream

UP_NS = "kubevirt-macvtap"
CM = "macvtap-deviceplugin-config"
UPSTREAM_IMAGE = "quay.io/kubevirt/macvtap-cni:compat"
CONF = json.dumps([{"name": NETWORK, "lowerDevice": LOWER, "mode": "bridge", "capacity": CAPACITY}])


def _tarballs() -> list[Path]:
    import os

    if os.environ.get("MACVTAPCTL_UPSTREAM_TARBALL"):
        return [Path(os.environ["MACVTAPCTL_UPSTREAM_TARBALL"])]
    return sorted((REPO.parent / "shared" / "upstream").glob("macvtap-cni-*.tar.gz"))


def upstream_available() -> bool:
    """Whether upstream's source is at hand (MACVTAPCTL_UPSTREAM_TARBALL, else ../shared/upstream)."""
    return any(p.is_file() for p in _tarballs())


def _upstream_source() -> Path:
    """The tarball tests/compat/build.sh builds from (MACVTAPCTL_UPSTREAM_TARBALL, else ../shared/upstream)."""
    tarball = _tarballs()
    assert tarball, "upstream macvtap-cni source not found in ../shared/upstream"
    return tarball[0]


def upstream_image(out_dir: Path) -> Path:
    """Upstream's two binaries where its manifest runs them (/macvtap-deviceplugin, /macvtap-cni), and `cp` for
    its install-cni init container (busybox-static from Debian)."""
    bins = build_upstream()
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    files: list[tuple[str, bytes | str | None, int]] = [
        ("macvtap-deviceplugin", (bins / "macvtap-deviceplugin").read_bytes(), 0o755),
        ("macvtap-cni", (bins / "macvtap").read_bytes(), 0o755),
        ("bin/busybox", busybox.read_bytes(), 0o755), ("bin/cp", "busybox", 0o777), ("bin/sh", "busybox", 0o777)]
    return write_oci_archive(out_dir / "upstream-macvtap.tar", UPSTREAM_IMAGE, [_layer(files)],
                             {"Env": ["PATH=/bin"]})


def upstream_manifest(cni_bin: Path) -> str:
    """templates/macvtap.yaml.in as its release renders it (the values, nothing else changed)."""
    with tarfile.open(_upstream_source()) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("templates/macvtap.yaml.in"))
        text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    values = {"Namespace": UP_NS, "DevicePluginConfigName": CM, "MacvtapImage": UPSTREAM_IMAGE,
              "ImagePullPolicy": "Never", "CniMountPath": str(cni_bin)}
    out = re.sub(r"\{\{ \.(\w+) \}\}", lambda m: values[m.group(1)], text)
    assert "{{" not in out
    return out



def deploy_upstream(c: Cluster) -> None:
    """What a user of macvtap-cni has: its ConfigMap, NAD and the binding registered (`macvtapctl setup`, which
    writes the ConfigMap in macvtap-cni's namespace), then its DaemonSet from its own manifest; advertising."""
    c.mvc("setup", LOWER, "--name", NETWORK, "--capacity", str(CAPACITY), "--mtu", str(NAD_MTU),
          "--dp-namespace", UP_NS)
    manifest = c.node.dir / "macvtap-cni.yaml"
    manifest.write_text(upstream_manifest(c.node.cni_bin))
    c.kubectl("apply", "-f", str(manifest))
    wait_for("macvtap-cni advertises", lambda: c.capacity() == CAPACITY, timeout=120)
