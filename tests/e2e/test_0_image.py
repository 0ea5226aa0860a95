"""The agent image the real node runs (tests/harness/images.py, built without a container engine): an OCI archive
whose rootfs, unpacked, runs `macvtapctl --help` and `agent --install-cni DIR --install-only` (chroot). Its size
is printed, not asserted. (`make image` builds the Containerfile with buildah and runs the same two commands.)"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

from tests.harness import images

REPO = Path(__file__).resolve().parents[2]


def test_the_agent_image_runs_its_commands(tmp_path: Path) -> None:
    archive = images.agent_image(tmp_path, REPO / "macvtapctl" / "agent" / "shim" / "macvtap",
                                 "localhost/macvtapctl/agent:test", "agent-image.tar")
    print(f"agent image: {archive.stat().st_size / 2**20:.1f} MiB")
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="tar")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "localhost/macvtapctl/agent:test"
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs" / "sha256" / layer["digest"].split(":")[1]) as tar:
            tar.extractall(rootfs, filter="fully_trusted")  # our own layers, root-owned files and devices
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    entry = config["config"]["Entrypoint"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["chroot", str(rootfs), *entry, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    r = run("--help")
    assert r.returncode == 0 and "doctor" in r.stdout, r.stderr
    r = run("agent", "--install-cni", "/opt/cni-test", "--install-only")
    assert r.returncode == 0, r.stderr
    shim = rootfs / "opt" / "cni-test" / "macvtap"
    assert shim.is_file() and os.access(shim, os.X_OK)
    assert shim.read_bytes() == (REPO / "macvtapctl" / "agent" / "shim" / "macvtap").read_bytes()
