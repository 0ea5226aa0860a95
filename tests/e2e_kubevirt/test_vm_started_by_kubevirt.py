"""VMs that `macvtapctl vm create --apply` wrote and KubeVirt started: virt-controller builds the launcher pod,
Multus and the agent give it the macvtap link and /dev/tapN, virt-handler and virt-launcher's libvirt start qemu.
The guest is a containerDisk built here (tests/node/guest.py: Debian's kernel and a busybox initramfs on a
syslinux disk) that asks DHCP for every NIC and prints its leases on the serial console."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import guest
import pytest
from harness import KUBEVIRT_NAME, KUBEVIRT_NAMESPACE
from node import LAN_NETNS

from macvtapctl.errors import ExitCode
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


def launcher_pods(c: Cluster, name: str) -> list[dict[str, Any]]:
    return list(json.loads(c.kubectl("get", "pods", "-n", POD_NS, "-l", f"vm.kubevirt.io/name={name}", "-o",
                                     "json").out)["items"])


def launcher_pod(c: Cluster, name: str) -> dict[str, Any]:
    pods = launcher_pods(c, name)
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


@pytest.mark.timeout(900)
def test_b_an_unregistered_binding_is_refused_by_kubevirt_and_doctor_s_fix_starts_the_vm(kv_cluster: Cluster,
                                                                                         lan_dhcp: Path) -> None:
    """The binding registration removed from the KubeVirt CR (as when the CR's owner resets it) after the VM was
    written: `vm create --apply` now refuses a new VM and writes nothing; starting the existing VM, KubeVirt's
    virt-controller refuses its launcher pod with its own message (the VMI's Synchronized condition); `doctor VM` names the cause and its printed fix,
    run as printed, lets KubeVirt start the VM."""
    c = kv_cluster
    create_vm(c, "unreg", "--run-strategy", "Halted")
    c.kubectl("patch", "kubevirt", KUBEVIRT_NAME, "-n", KUBEVIRT_NAMESPACE, "--type", "json", "-p", json.dumps(
        [{"op": "remove", "path": "/spec/configuration/network/binding/macvtap"}]))
    refused = c.mvc("vm", "create", "unreg-new", "-n", POD_NS, "--network", NETWORK, "--mac", "auto",
                    "--image", guest.CONTAINERDISK_IMAGE, "--apply", check=False)
    assert refused.code == ExitCode.PRECONDITION, refused
    assert "'macvtap' is not registered" in refused.err and "nothing was written" in refused.err, refused.err
    assert c.kubectl("get", "vm", "-n", POD_NS, "unreg-new", check=False).code != 0

    c.kubectl("patch", "vm", "-n", POD_NS, "unreg", "--type", "merge", "-p", '{"spec":{"runStrategy":"Always"}}')

    def kubevirt_refusal() -> str | None:
        """virt-controller's sync error, which it writes into the VMI's Synchronized condition."""
        conditions = (vmi(c, "unreg") or {}).get("status", {}).get("conditions") or []
        return next((f"{k['reason']}: {k['message']}" for k in conditions if k.get("type") == "Synchronized"
                     and "couldn't find configuration for network binding: macvtap" in k.get("message", "")), None)

    message = wait_for("virt-controller's refusal of the launcher pod", kubevirt_refusal, timeout=120, interval=1)
    assert message.startswith("FailedCreate: failed to render launch manifest"), message
    assert launcher_pods(c, "unreg") == [], "a launcher pod exists although KubeVirt refused to render it"

    report = c.mvc("doctor", "unreg", "-n", POD_NS, "-o", "json", check=False)
    assert report.code == ExitCode.FINDINGS, report
    found = [f for f in json.loads(report.out)["findings"] if f["id"] == "vm-binding-not-registered"]
    assert len(found) == 1 and found[0]["severity"] == "error", report.out
    assert found[0]["object"] == f"virtualmachine/{POD_NS}/unreg", found
    fix = shlex.split(found[0]["fix"])
    assert fix[:2] == ["macvtapctl", "enable"], found
    c.mvc(*fix[1:])
    wait_vmi_running(c, "unreg")
    after = json.loads(c.mvc("doctor", "unreg", "-n", POD_NS, "-o", "json", check=False).out)["findings"]
    assert not [f for f in after if f["id"] == "vm-binding-not-registered"], after
    c.kubectl("delete", "vm", "-n", POD_NS, "unreg", "--wait=true", timeout=180)
