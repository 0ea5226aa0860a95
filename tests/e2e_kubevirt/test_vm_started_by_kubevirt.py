"""VMs that `macvtapctl vm create --apply` wrote and KubeVirt started: virt-controller builds the launcher pod,
Multus and the agent give it the macvtap link and /dev/tapN, virt-handler and virt-launcher's libvirt start qemu.
The guest is a containerDisk built here (tests/node/guest.py: Debian's kernel and a busybox initramfs on a
syslinux disk) that asks DHCP for every NIC and prints its leases on the serial console."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import guest
import pytest
from node import LAN_NETNS

from tests.e2e.helpers import NETWORK, POD_NS, Cluster, wait_for

VMI_TIMEOUT = 300  # TCG: the launcher image is large and the guest boots without KVM


def create_vm(c: Cluster, name: str, *extra: str) -> dict[str, Any]:
    c.mvc("vm", "create", name, "-n", POD_NS, "--network", NETWORK, "--mac", "auto", "--memory", "256Mi",
          "--image", guest.CONTAINERDISK_IMAGE, "--apply", *extra)
    return json.loads(c.kubectl("get", "vm", "-n", POD_NS, name, "-o", "json").out)


def vmi(c: Cluster, name: str) -> dict[str, Any] | None:
    done = c.kubectl("get", "vmi", "-n", POD_NS, name, "-o", "json", check=False)
    return json.loads(done.out) if done.code == 0 else None


def wait_vmi_running(c: Cluster, name: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        obj = vmi(c, name)
        return obj if obj and obj.get("status", {}).get("phase") == "Running" else None

    try:
        return dict(wait_for(f"VMI {name} Running", running, timeout=VMI_TIMEOUT, interval=2))
    except AssertionError:
        raise AssertionError(f"VMI {name} not Running:\n{diagnostics(c, name)}") from None


def launcher_pod(c: Cluster, name: str) -> dict[str, Any]:
    pods = json.loads(c.kubectl("get", "pods", "-n", POD_NS, "-l", f"vm.kubevirt.io/name={name}", "-o",
                                "json").out)["items"]
    live = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")]
    assert len(live) == 1, f"launcher pods of {name}: {[p['metadata']['name'] for p in pods]}"
    return dict(live[0])


def console(c: Cluster, pod: str) -> str:
    return c.kubectl("logs", "-n", POD_NS, pod, "-c", "guest-console-log", check=False).out


def leases_on_console(c: Cluster, pod: str) -> dict[str, dict[str, str]]:
    """The guest's DHCP leases by MAC, as its init printed them on the serial console."""
    found: dict[str, dict[str, str]] = {}
    for line in console(c, pod).splitlines():
        m = re.search(r"MVT-LEASE (.*)", line)
        if m:
            fields = dict(kv.split("=", 1) for kv in m.group(1).split())
            found[fields["mac"]] = fields
    return found


def pod_links(c: Cluster, pod: dict[str, Any]) -> list[dict[str, Any]]:
    compute = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "compute")
    pid = c.node.container_pid(compute["containerID"])
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "-d", "link", "show"], check=True,
                         capture_output=True, text=True).stdout
    return list(json.loads(out))


def diagnostics(c: Cluster, name: str) -> str:
    parts = [c.kubectl("get", "vm,vmi,pods", "-n", POD_NS, "-o", "wide", check=False).out,
             c.kubectl("describe", "vmi", "-n", POD_NS, name, check=False).out[-3000:],
             c.kubectl("get", "events", "-n", POD_NS, "--sort-by=.lastTimestamp", check=False).out[-4000:],
             c.mvc("doctor", "-n", POD_NS, check=False).out[-3000:]]
    return "\n".join(parts)


def lan_ping(ip: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", LAN_NETNS, "busybox", "ping", "-c", "1", "-W", "1", ip],
                          capture_output=True, check=False).returncode == 0:
            return True
    return False


@pytest.mark.timeout(1200)  # the first test also pays for the package fixture: KubeVirt deployed by virt-operator
def test_a_the_seed_vm_leases_from_the_lan_and_answers_it(kv_cluster: Cluster, lan_dhcp: Path) -> None:
    """The seed's VM shape (pod network + a macvtap binding interface, cloud-init DHCP): the guest leases the LAN
    DHCP server's address for the MAC `--mac auto` chose, the LAN pings it, and that MAC is the same in the VM
    spec, the VMI status, the pod's network-status, the macvtap link and the guest."""
    c = kv_cluster
    vm = create_vm(c, "seed")
    ifaces = {i["name"]: i for i in vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]}
    assert ifaces[NETWORK]["binding"] == {"name": "macvtap"}
    mac = ifaces[NETWORK]["macAddress"]
    running = wait_vmi_running(c, "seed")
    pod = launcher_pod(c, "seed")
    lease = wait_for("the guest's DHCP lease on the macvtap NIC", lambda: leases_on_console(c, pod["metadata"][
        "name"]).get(mac), timeout=180, interval=2)
    assert lease["server"] == "198.51.100.1", lease  # the LAN's dnsmasq, not the pod network's
    assert mac in lan_dhcp.read_text().lower(), lan_dhcp.read_text()
    assert lan_ping(lease["ip"]), f"the LAN got no reply from {lease['ip']}"
    # The same MAC all along the chain.
    status_ifaces = {i.get("name"): i for i in running["status"].get("interfaces") or []}
    assert status_ifaces[NETWORK]["mac"] == mac, status_ifaces
    netstatus = json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    assert [n["mac"] for n in netstatus if n["name"].endswith(f"/{NETWORK}")] == [mac], netstatus
    macvtaps = [link for link in pod_links(c, pod) if (link.get("linkinfo") or {}).get("info_kind") == "macvtap"]
    assert [link["address"] for link in macvtaps] == [mac], macvtaps
