"""A VM on the wire, timed on the real node (root): pod created -> the guest's first reply from the LAN, and the
guest's boot (qemu start -> its NIC up), median of N runs. With --chain, also prints the real objects of one run
(NAD, ConfigMap entry, Allocate device, network-status, the macvtap in the pod, the tap fd in qemu, the guest MAC):
docs/vm-on-the-wire.md shows such a run.

    .venv/bin/python benchmarks/vm_on_wire.py [--runs 5] [--chain]

Starts its own control plane and node (tests/node), deploys the agent as `make e2e` does, and tears both down.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.harness import guest
from tests.harness.cluster import NETWORK, Cluster, wait_for
from tests.harness.controlplane import ControlPlane
from tests.harness.node import LAN_PEER_IP, Node


def one_run(c: Cluster, i: int, workdir: Path, chain: bool) -> tuple[float, float]:
    name, mac = f"vm-bench-{i}", f"02:00:5e:70:00:{i:02x}"
    vm = yaml.safe_load(c.mvc("vm", "create", name, "--network", NETWORK, "--mac", f"{NETWORK}={mac}").out)
    t0 = time.monotonic()
    ifname = c.make_launcher_pod(name, vm)[NETWORK]
    c.wait_running(name)
    iface = c.interface(name, ifname)
    pid = c.container_pid(name)
    # The chain run keeps its guest up while it is inspected.
    g = guest.launch(pid, f"/dev/tap{iface['ifindex']}", iface["mac"], int(iface["mtu"]), ip="198.51.100.60/24",
                     action="serve:30" if chain else f"ping:{LAN_PEER_IP}", workdir=workdir)
    try:
        if chain:
            g.wait_for("MVT-READY")
            print_chain(c, name, ifname, iface, vm, g, g.nic())
            return 0.0, 0.0
        g.nic()
        booted = time.monotonic() - g.started
        result = g.result()
        total = time.monotonic() - t0
        assert result == f"ok ping {LAN_PEER_IP}", result
    finally:
        g.stop()
        c.delete_pods(name)
    return total, booted


def print_chain(c: Cluster, name: str, ifname: str, iface: dict[str, str], vm: dict, g: guest.Guest,
                nic: dict[str, str]) -> None:
    pod = c.pod(name) or {}
    print("\n--- the chain of one run ---")
    print("VM interface:", json.dumps(vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1]))
    print("VM network:", json.dumps(vm["spec"]["template"]["spec"]["networks"][1]))
    print("NAD:", c.kubectl("get", "net-attach-def", NETWORK, "-o", "json").out)
    print("ConfigMap DP_MACVTAP_CONF:", c.dp_config())
    print("pod networks annotation:", pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])
    print("pod network-status:", pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    print("pod limits:", json.dumps(pod["spec"]["containers"][0]["resources"]))
    print("in the pod:", json.dumps(iface))
    print("agent log:", "\n".join(line for line in c.kubectl("logs", "-n", "macvtap", "ds/macvtapctl-agent").out
                                  .splitlines()[-6:]))
    # nsenter and sh exec into qemu: the launched process is qemu itself (while the guest still runs).
    cmdline = Path(f"/proc/{g.proc.pid}/cmdline")
    args = cmdline.read_bytes().split(b"\0") if cmdline.exists() else []
    status = Path(f"/proc/{g.proc.pid}/status")
    uid = next((line.split()[1] for line in status.read_text().splitlines() if line.startswith("Uid:")), "?") \
        if status.exists() else "?"
    fd3 = os.readlink(f"/proc/{g.proc.pid}/fd/3") if args else "?"
    print(f"qemu (uid {uid}, fd 3 -> {fd3}):", " ".join(a.decode() for a in args if a))
    print("guest NIC:", nic)
    print("---\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chain", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "cp", kubevirt_version="v1.5.0", in_cluster=True).start()
        node = Node(cp.dir)
        try:
            node.up()
            c = Cluster(cp, node)
            c.deploy()
            totals, boots = [], []
            workdir = Path("/var/lib/macvtapctl-e2e/guest")
            if args.chain:  # an extra run, not timed: printing the chain takes time of its own
                one_run(c, 99, workdir, True)
            for i in range(args.runs):
                total, booted = one_run(c, i, workdir, False)
                totals.append(total)
                boots.append(booted)
                wait_for("links reclaimed", lambda: c.capacity(field="allocatable") is not None, timeout=30)
            accel, vhost = guest.accelerator()
            print(f"qemu accel={accel} vhost={vhost}, {args.runs} runs")
            print(f"pod created -> guest's first reply from the LAN: median {statistics.median(totals):.1f} s "
                  f"(min {min(totals):.1f}, max {max(totals):.1f})")
            print(f"guest boot (qemu start -> NIC up): median {statistics.median(boots):.1f} s")
        finally:
            node.down()
            cp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
