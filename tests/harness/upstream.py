"""Run the real upstream macvtap-cni (built from ../shared/upstream) or the agent as a device plugin on a kubelet
stand-in: shared by tests/compat and benchmarks/deviceplugin.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.kubelet import FakeKubelet
from tests.harness.paths import REPO, UPSTREAM_BUILD

PREFIX = "macvtap.network.kubevirt.io/"


def build_upstream() -> Path:
    """The directory holding upstream's `macvtap` and `macvtap-deviceplugin` (CalledProcessError without the
    source beside the repository)."""
    out = subprocess.run(["bash", str(UPSTREAM_BUILD)], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return Path(out)


class DevicePlugin:
    """One device plugin (upstream's or the agent) with its own kubelet stand-in and directory."""

    def __init__(self, kind: str, root: Path, upstream: Path, conf: str | None) -> None:
        self.kind, self.root = kind, root
        self.kubelet = FakeKubelet(root / "device-plugins")
        self.kubelet.start()
        log = open(root / "dp.log", "ab")  # noqa: SIM115 - lives with the process
        env = {"PATH": os.environ["PATH"]}
        if conf is not None:
            env["DP_MACVTAP_CONF"] = conf
        if kind == "upstream":
            # A private mount namespace: its hard-coded /var/lib/kubelet/device-plugins is our directory.
            script = ('mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/kubelet/device-plugins && '
                      'mount --bind "$1" /var/lib/kubelet/device-plugins && exec "$2" -logtostderr -v 3')
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                    str(self.kubelet.dir), str(upstream / "macvtap-deviceplugin")]
        else:
            argv = [sys.executable, "-m", "macvtapctl", "agent", "--cni-socket", str(root / "cni.sock"),
                    "--device-plugin-dir", str(self.kubelet.dir), "--metrics-address", "",
                    "--pod-resources-socket", self.kubelet.pod_resources_socket, "--reclaim-interval", "0"]
            env["PYTHONPATH"] = str(REPO)
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def socket(self) -> str:
        return str(self.root / "cni.sock")

    def advertised(self) -> dict[str, int]:
        with self.kubelet.cond:
            return {r[len(PREFIX):]: len(p.devices) for r, p in self.kubelet.plugins.items()}

    def log(self) -> str:
        return (self.root / "dp.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.kubelet.stop()
