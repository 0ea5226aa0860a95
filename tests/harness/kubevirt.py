"""KubeVirt's own components on the real node: virt-operator deploys virt-api, virt-controller and virt-handler from
the KubeVirt CR, with the images built here (tests/kubevirt/runtime) imported into the node's containerd.

    python -m tests.harness.kubevirt up [--dir .devcluster]   (after `make node-up` on a control plane started with
                                                            --crds runtime; `make kubevirt-up` does all three)
    python -m tests.harness.kubevirt lan-dhcp                 (a DHCP server on the LAN; `make demo`)
    python -m tests.harness.kubevirt lan-ping VM              (the VM's lease, and the LAN pinging it; `make demo`)
    python -m tests.harness.kubevirt lan-migrate VM           (vm migrate --wait under the LAN's pings; make demo NODES=2)

Nothing of KubeVirt is re-implemented: the operator's manifest is KubeVirt's release manifest rendered by its own
manifest-templator, and everything after it (install strategy, CRDs, webhooks, the components) is virt-operator's.
What this sets is what a cluster admin sets: the image registry and tag, IfNotPresent, and `useEmulation: true`
because this host's /dev/kvm (a PVM host) cannot run stock kernels. `make node-down` undoes it with the node.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.harness import guest, images
from tests.harness.controlplane import KUBEVIRT_NAME, KUBEVIRT_NAMESPACE, NODE_NAME, kubevirt_runtime_version
from tests.harness.node import LAN_NETNS, Node, NodeError
from tests.harness.paths import KUBEVIRT_SRC
from tests.harness.second_node import SecondNode

REGISTRY = "localhost/kubevirt"
COMPONENTS = ("virt-operator", "virt-api", "virt-controller", "virt-handler", "virt-launcher")
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
# KubeVirt v1.7.0's default obsolete CPU models (pkg/virt-handler/node-labeller/util DefaultObsoleteCPUModels), but
# kvm64: see kubevirt_cr.
OBSOLETE_CPU_MODELS = tuple(f"{m}{v}" for m in ("486", "pentium", "pentium2", "pentium3", "pentiumpro", "coreduo",
                                                  "n270", "core2duo", "Conroe", "athlon", "phenom", "qemu64", "qemu32",
                                                  "kvm32", "Opteron_G1", "Opteron_G2") for v in ("", "-v1"))


def runtime_dir() -> Path:
    """The KubeVirt runtime's images and manifests (built, or found cached, by tests/kubevirt/runtime/build.sh)."""
    out = subprocess.run(["bash", str(KUBEVIRT_SRC / "runtime" / "build.sh"),
                          kubevirt_runtime_version()], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def kubevirt_cr(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
        "metadata": {"name": KUBEVIRT_NAME, "namespace": KUBEVIRT_NAMESPACE},
        "spec": {
            "imageRegistry": REGISTRY, "imageTag": version, "imagePullPolicy": "IfNotPresent",
            # The images are imported, not pulled: IfNotPresent. TCG, not KVM: this host's KVM is a PVM host.
            "configuration": {"developerConfiguration": {"useEmulation": True},
                              # Under TCG the node labeller reads this host's CPU model as kvm64, which KubeVirt's
                              # default list counts obsolete: no node would get its migration label and no VM could
                              # migrate (NoSuitableNodesForHostModelMigration). The admin's list, without it.
                              "obsoleteCPUModels": dict.fromkeys(OBSOLETE_CPU_MODELS, True)},
        },
    }


class KubeVirt:
    def __init__(self, cluster_dir: Path) -> None:
        self.node = Node(cluster_dir)
        self.cluster = self.node.cluster
        cp_state = self.cluster / "state.json"
        if not cp_state.exists():
            raise NodeError(f"no local control plane in {self.cluster}: run `make kubevirt-up`")
        self.cp = json.loads(cp_state.read_text())
        bins = Path(self.cp["bin"])
        self.kubectl = [str(bins / "kubectl"), f"--kubeconfig={self.cluster / 'kubeconfig'}"]

    def _kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        r = subprocess.run([*self.kubectl, *args], check=False, text=True, capture_output=True, input=input)
        if check and r.returncode != 0:
            raise NodeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def up(self, timeout: float = 900) -> None:
        if self.cp.get("crds") != "runtime":
            raise NodeError("the local control plane runs the KubeVirt fixture, not a control plane ready for "
                            "KubeVirt's own components: `make cluster-down`, then `make kubevirt-up`")
        self.node._load()
        if not self.node.state.get("pids"):
            raise NodeError(f"node {NODE_NAME} is not running: `make node-up` first")
        version = kubevirt_runtime_version()
        t0 = time.monotonic()
        rt = runtime_dir()
        nbins = Path(self.node.state["node_bin"])
        second = SecondNode(self.cluster)
        nodes = [lambda *a: self.node.ctr(nbins, *a, quiet=True, check=True)]
        disk = guest.containerdisk_image(self.node.images)
        if second.running():
            second.see(disk)
            nodes.append(lambda *a: second.ctr(nbins, *a))
        for ctr in nodes:  # every node's containerd: no registry serves these
            for c in COMPONENTS:
                ctr("images", "import", "--platform", "linux/amd64", str(rt / f"{c}.tar"))
                # Pinned: the kubelet's image GC must not remove an image no registry can give back.
                ctr("images", "label", f"{REGISTRY}/{c}:{version}", "io.cri-containerd.pinned=pinned")
            # The test guest's containerDisk (tests/harness/guest.py), the image `make demo` and the tests give VMs.
            ctr("images", "import", "--platform", "linux/amd64", str(disk))
            # Also under its digest, as a registry pull records it: the CRI then reports the container's image
            # as repo@digest, which KubeVirt pins a migration target's containerDisk to (an imported image alone
            # is reported by its config's ID, which no node can resolve: ImagePullBackOff on the target).
            ctr("images", "tag", guest.CONTAINERDISK_IMAGE, f"{guest.CONTAINERDISK_IMAGE.rsplit(':', 1)[0]}@"
                f"{images.manifest_digest(disk)}")
        print(f"KubeVirt {version} images imported in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        # virt-operator, virt-api and virt-controller require a control-plane node (KubeVirt's placement rule).
        self._kubectl("label", "node", NODE_NAME, f"{CONTROL_PLANE_LABEL}=", "--overwrite")
        self._kubectl("apply", "--server-side", "--force-conflicts", "-f", str(rt / "kubevirt-operator.yaml"))
        if not self._kubectl("get", "kubevirt", "-n", KUBEVIRT_NAMESPACE, KUBEVIRT_NAME, "--ignore-not-found",
                             "-o", "name", check=False).strip():
            self._kubectl("create", "-f", "-", input=json.dumps(kubevirt_cr(version)))
        self.wait_deployed(timeout)
        where = f"nodes {NODE_NAME} and {second.name}" if second.running() else f"node {NODE_NAME}"
        print(f"KubeVirt {version} Deployed in {time.monotonic() - t0:.1f}s (virt-operator, virt-api, "
              f"virt-controller on node {NODE_NAME}, virt-handler on {where})")

    def wait_deployed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            out = self._kubectl("get", "kubevirt", "-n", KUBEVIRT_NAMESPACE, KUBEVIRT_NAME, "-o", "json",
                                check=False)
            status = json.loads(out).get("status", {}) if out else {}
            phase = status.get("phase", "")
            conds = ", ".join(f"{c['type']}={c['status']}" for c in status.get("conditions") or [])
            line = f"KubeVirt: {phase or 'no phase yet'}{f' ({conds})' if conds else ''}"
            if line != last:
                print(line, file=sys.stderr)
                last = line
            if phase == "Deployed":
                return
            time.sleep(3)
        pods = self._kubectl("get", "pods", "-n", KUBEVIRT_NAMESPACE, "-o", "wide", check=False)
        events = self._kubectl("get", "events", "-n", KUBEVIRT_NAMESPACE, "--sort-by=.lastTimestamp", check=False)
        raise NodeError(f"KubeVirt not Deployed after {timeout:.0f}s ({last})\n{pods}\n"
                        + "\n".join(events.splitlines()[-25:]))


    def lan_ping(self, vm: str, timeout: float) -> None:
        """`make demo`: the lease the LAN's DHCP server gave the VM's macvtap MAC, and three pings from the LAN."""
        obj = json.loads(self._kubectl("get", "vm", vm, "-o", "json"))
        macs = [str(i["macAddress"]).lower() for i in obj["spec"]["template"]["spec"]["domain"]["devices"][
            "interfaces"] if i.get("macAddress")]
        leases = self.node.dir / "lan.leases"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = leases.read_text().splitlines() if leases.exists() else []
            found = [line.split() for line in lines if len(line.split()) > 2 and line.split()[1] in macs]
            if found:
                print(f"lease: {found[0][2]} for {found[0][1]} (the LAN's DHCP server, {leases})")
                subprocess.run(["ip", "netns", "exec", LAN_NETNS, "busybox", "ping", "-c", "3", found[0][2]],
                               check=True)
                return
            time.sleep(1)
        raise NodeError(f"no lease for {', '.join(macs)} in {leases} after {timeout:.0f}s")


    def lan_migrate(self, vm: str) -> None:
        """`make demo NODES=2`: `macvtapctl vm migrate VM --wait` while the LAN pings the VM every 10 ms; the gap."""
        from tests.harness import l2probe

        obj = json.loads(self._kubectl("get", "vm", vm, "-o", "json"))
        macs = [str(i["macAddress"]).lower() for i in obj["spec"]["template"]["spec"]["domain"]["devices"][
            "interfaces"] if i.get("macAddress")]
        leases = [line.split() for line in (self.node.dir / "lan.leases").read_text().splitlines()]
        ip = next(f[2] for f in leases if len(f) > 2 and f[1] in macs)
        pinger = l2probe.Pinger(LAN_NETNS, ip, 600)
        pinger.start()
        time.sleep(1)
        start = time.time()
        try:
            done = subprocess.run([sys.executable, "-m", "macvtapctl", "--kubeconfig", str(self.cluster / "kubeconfig"),
                                   "vm", "migrate", vm, "--wait"], check=False)
            end = time.time()
            time.sleep(2)
        finally:
            pinger.stop(now=True)
        if done.returncode != 0:
            raise NodeError(f"vm migrate {vm} exited {done.returncode}")
        print(f"the LAN pinged {ip} every 10 ms: longest gap without a reply {pinger.gap_after(start, end + 2):.0f} "
              f"ms, {pinger.lost(start, end + 2)} of {len([t for t in pinger.sends if start < t < end + 2])} lost, "
              f"during a {end - start:.1f} s migration")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cmd", choices=("up", "lan-dhcp", "lan-ping", "lan-migrate"))
    parser.add_argument("vm", nargs="?", help="lan-ping, lan-migrate: the VM")
    parser.add_argument("--dir", default=".devcluster")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    try:
        kv = KubeVirt(Path(args.dir))
        if args.cmd == "up":
            kv.up(args.timeout)
        elif args.cmd == "lan-dhcp":
            print(f"the LAN's DHCP server: dnsmasq in namespace {LAN_NETNS}, leases in {kv.node.start_lan_dhcp()}")
        elif args.cmd == "lan-ping":
            kv.lan_ping(args.vm or parser.error("lan-ping needs the VM's name"), min(args.timeout, 300))
        else:
            kv.lan_migrate(args.vm or parser.error("lan-migrate needs the VM's name"))
    except (NodeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
