"""A VM started by KubeVirt, timed on the real node (root): `vm create --apply` -> VMI Running -> the first reply
to a LAN ping of the address the guest leased, median of N runs, interleaved with the hand-made launcher of
benchmarks/vm_on_wire.py (its pod built by the test, qemu started without libvirt) on the same cluster; and the
memory of KubeVirt's components on the node (the resident set of every process in each pod's cgroup).

    .venv/bin/python benchmarks/vm_kubevirt.py [--runs 5] [--chain]

With --chain, first prints the real objects of one VM along the chain (VM, launcher pod, network-status, VMI
status, the macvtap in the pod, qemu's tap descriptor and command line, the guest's console): docs/vm-on-the-wire.md
shows such a run.

Starts its own control plane, node and KubeVirt (tests/harness/cluster.py) and tears them down.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import vm_on_wire
from benchmarks.common import Row, median, record
from tests.e2e_kubevirt.vms import (
    console,
    create_vm,
    lan_ping,
    launcher_pod,
    mac_of,
    macvtap_links,
    wait_lease,
    wait_stopped,
    wait_vmi_running,
)
from tests.harness.cluster import POD_NS, Cluster, lan_dhcp, running_cluster, wait_for
from tests.harness.controlplane import KUBEVIRT_NAMESPACE


def one_vm(c: Cluster, i: int) -> tuple[float, float]:
    """Seconds from `vm create --apply` to VMI Running, and to the first LAN reply."""
    name = f"kv-bench-{i}"
    t0 = time.monotonic()
    mac = mac_of(create_vm(c, name))
    wait_vmi_running(c, name)
    running = time.monotonic() - t0
    ip = wait_lease(c, launcher_pod(c, name), mac)["ip"]
    assert lan_ping(ip, timeout=60), f"no reply from {ip}"
    replied = time.monotonic() - t0
    c.kubectl("delete", "vm", "-n", POD_NS, name, "--wait=true", timeout=180)
    wait_stopped(c, name)
    return running, replied


def print_chain(c: Cluster) -> None:
    """One VM's real objects, step by step (not timed)."""
    vm = create_vm(c, "kv-chain")
    mac = mac_of(vm)
    running = wait_vmi_running(c, "kv-chain")
    pod = launcher_pod(c, "kv-chain")
    wait_lease(c, pod, mac)
    tmpl = vm["spec"]["template"]["spec"]
    print("\n--- the chain of one VM started by KubeVirt ---")
    print("VM interfaces:", json.dumps(tmpl["domain"]["devices"]["interfaces"]))
    print("VM networks:", json.dumps(tmpl["networks"]))
    ann = pod["metadata"]["annotations"]
    print("launcher pod:", pod["metadata"]["name"])
    print("pod networks annotation:", ann.get("k8s.v1.cni.cncf.io/networks"))
    print("pod network-status:", ann.get("k8s.v1.cni.cncf.io/network-status"))
    compute = next(x for x in pod["spec"]["containers"] if x["name"] == "compute")
    print("compute limits:", json.dumps(compute["resources"].get("limits")))
    print("VMI status.interfaces:", json.dumps(running["status"].get("interfaces")))
    print("macvtap in the pod:", json.dumps([{k: link.get(k) for k in ("ifname", "ifindex", "address", "mtu")}
                                            | {"mode": (link.get("linkinfo") or {}).get("info_data", {}).get("mode")}
                                            for link in macvtap_links(c, pod)]))
    cs = next(x for x in pod["status"]["containerStatuses"] if x["name"] == "compute")
    pid = c.node.container_pid(cs["containerID"])
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":memory:" in x)
    procs = (Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/") / "cgroup.procs").read_text().split()
    for p in procs:
        try:
            args = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and b"qemu-system" in args[0]:
            uid = next(x.split()[1] for x in Path(f"/proc/{p}/status").read_text().splitlines()
                       if x.startswith("Uid:"))
            taps = sorted({os.readlink(f"/proc/{p}/fd/{fd}") for fd in os.listdir(f"/proc/{p}/fd")
                           if os.readlink(f"/proc/{p}/fd/{fd}").startswith("/dev/tap")})
            print(f"qemu (uid {uid}, tap descriptors -> {', '.join(taps)}):",
                  " ".join(a.decode() for a in args if a))
    print("guest console:", "\n".join(x for x in console(c, pod["metadata"]["name"]).splitlines() if "MVT-" in x))
    print("---\n")
    c.kubectl("delete", "vm", "-n", POD_NS, "kv-chain", "--wait=true", timeout=180)
    wait_stopped(c, "kv-chain")


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status")
    try:
        m = re.search(r"^VmRSS:\s+(\d+)", status.read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def pod_rss_mib(c: Cluster, pod: dict) -> float:
    """The resident memory of every process in the pod's memory cgroup (cgroup v1 on this machine)."""
    total = 0
    for cs in pod["status"].get("containerStatuses") or []:
        if not cs.get("containerID"):
            continue
        pid = c.node.container_pid(cs["containerID"])
        line = next((x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":memory:" in x), "")
        procs = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/") / "cgroup.procs"
        pids = [int(p) for p in procs.read_text().split()] if procs.exists() else [pid]
        total += sum(rss_kib(p) for p in pids)
    return total / 1024


def memory(c: Cluster) -> dict[str, float]:
    """MiB per component: KubeVirt's pods (kubevirt namespace, summed per component) and one VM's launcher."""
    pods = json.loads(c.kubectl("get", "pods", "-n", KUBEVIRT_NAMESPACE, "-o", "json").out)["items"]
    out: dict[str, float] = {}
    for pod in pods:
        component = (pod["metadata"].get("labels") or {}).get("kubevirt.io") or pod["metadata"]["name"]
        out[component] = out.get(component, 0.0) + pod_rss_mib(c, pod)
    mac = mac_of(create_vm(c, "kv-mem"))
    wait_vmi_running(c, "kv-mem")
    pod = launcher_pod(c, "kv-mem")
    wait_lease(c, pod, mac)
    out["virt-launcher (one VM, 256Mi guest)"] = pod_rss_mib(c, launcher_pod(c, "kv-mem"))
    c.kubectl("delete", "vm", "-n", POD_NS, "kv-mem", "--wait=true", timeout=180)
    wait_stopped(c, "kv-mem")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chain", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_cluster(Path(tmp) / "cp", kubevirt=True) as c, \
            lan_dhcp(c):
        if args.chain:
            print_chain(c)
        running, replied, handmade = [], [], []
        workdir = Path("/var/lib/macvtapctl-e2e/guest")
        for i in range(args.runs):  # interleaved: both see the same machine load
            r, rep = one_vm(c, i)
            running.append(r)
            replied.append(rep)
            handmade.append(vm_on_wire.one_run(c, 50 + i, workdir, False)[0])
            wait_for("links reclaimed", lambda: c.capacity(field="allocatable") is not None, timeout=30)
        print(f"{args.runs} runs, TCG (useEmulation: true)")
        print(f"vm create --apply -> VMI Running: median {median(running):.1f} s "
              f"(min {min(running):.1f}, max {max(running):.1f})")
        record(Row("VM on the wire", "KubeVirt: vm create --apply -> first LAN reply (median)", median(replied),
                   median(handmade), "s", "the hand-made launcher (pod created -> first LAN reply)"))
        for component, mib in sorted(memory(c).items()):
            print(f"memory: {component}: {mib:.0f} MiB resident")
            record(Row("KubeVirt memory", f"{component} RSS", mib, 0, "MiB", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
