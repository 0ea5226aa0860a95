"""VMs that `macvtapctl vm create --apply` wrote and KubeVirt started: virt-controller builds the launcher pod,
Multus and the agent give it the macvtap link and /dev/tapN, virt-handler and virt-launcher's libvirt start qemu.
The guest is a containerDisk built here (tests/harness/guest.py: Debian's kernel and a busybox initramfs on a
syslinux disk) that asks DHCP for every NIC and prints its leases on the serial console."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.agent.deviceplugin.podresources import owned_device_ids
from macvtapctl.errors import ExitCode
from tests.e2e_kubevirt.vms import (
    create_vm,
    lan_ping,
    launcher_pod,
    launcher_pods,
    leases_on_console,
    links_with_mac,
    mac_of,
    macvtap_links,
    pod_links,
    reached_on_console,
    set_run_strategy,
    vmi,
    wait_lease,
    wait_stopped,
    wait_vmi_running,
)
from tests.harness import guest
from tests.harness.cluster import (
    AGENT_NS,
    NETWORK,
    POD_NS,
    Cluster,
    doctor_findings,
    no_mvt_links,
    pod_netns,
    wait_for,
)
from tests.harness.controlplane import KUBEVIRT_NAME, KUBEVIRT_NAMESPACE, NODE_NAME


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


@pytest.mark.timeout(1200)
def test_c_two_vms_on_one_bridge_resource_reach_each_other_a_restart_keeps_the_mac_a_delete_leaves_nothing(
        kv_cluster: Cluster, lan_dhcp: Path) -> None:
    """Two VMs on the bridge-mode resource find each other on the LAN (each guest's broadcast ping, confirmed by a
    unicast one: the frames go through the lower device's macvtap bridge). Stopping one gives its device back to
    the kubelet and leaves no link with its MAC; starting it again gives the same MAC on a new macvtap link and
    the same lease. Deleting both leaves no link, pod namespace, /dev/tapN or owned device."""
    c = kv_cluster
    owned_before, netns_before = owned_device_ids(), pod_netns()
    names = ("left", "right")
    macs = {name: mac_of(create_vm(c, name)) for name in names}
    pods = {}
    for name in names:
        wait_vmi_running(c, name)
        pods[name] = launcher_pod(c, name)
    leases = {name: wait_lease(c, pods[name], macs[name]) for name in names}
    for me, peer in (names, names[::-1]):
        reached = wait_for(f"{me} reaching {peer} ({leases[peer]['ip']}) on the LAN", lambda me=me, peer=peer: [
            r for r in reached_on_console(c, pods[me]["metadata"]["name"])
            if r["to"] == leases[peer]["ip"] and r["mac"] == macs[me]], timeout=120, interval=2)
        assert reached[0]["from"] == leases[me]["ip"], reached
    devices = owned_device_ids() - owned_before
    assert len(devices) == 2, f"the kubelet should hold one device per VM, holds {sorted(devices)}"
    taps = {name: f"/dev/tap{macvtap_links(c, pods[name])[0]['ifindex']}" for name in names}

    set_run_strategy(c, "right", "Halted")
    wait_stopped(c, "right")
    wait_for("right's device given back to the kubelet", lambda: len(owned_device_ids() - owned_before) == 1,
             timeout=60, interval=1)
    wait_for(f"no link with right's MAC {macs['right']}", lambda: not links_with_mac(macs["right"]), timeout=60)

    set_run_strategy(c, "right", "Always")
    wait_vmi_running(c, "right")
    again = launcher_pod(c, "right")
    assert again["metadata"]["uid"] != pods["right"]["metadata"]["uid"]
    assert mac_of(json.loads(c.kubectl("get", "vm", "-n", POD_NS, "right", "-o", "json").out)) == macs["right"]
    assert [link["address"] for link in macvtap_links(c, again)] == [macs["right"]]
    assert wait_lease(c, again, macs["right"])["ip"] == leases["right"]["ip"]  # the LAN knows it as before
    assert lan_ping(leases["right"]["ip"])
    taps["right-again"] = f"/dev/tap{macvtap_links(c, again)[0]['ifindex']}"

    c.kubectl("delete", "vm", "-n", POD_NS, *names, "--wait=true", timeout=180)
    for name in names:
        wait_stopped(c, name)
    wait_for("every device given back to the kubelet", lambda: owned_device_ids() == owned_before, timeout=60,
             interval=1)
    for name in names:
        wait_for(f"no link with {name}'s MAC", lambda name=name: not links_with_mac(macs[name]), timeout=60)
    no_mvt_links()
    assert pod_netns() <= netns_before, f"leaked pod namespaces: {pod_netns() - netns_before}"
    left = [tap for tap in taps.values() if Path(tap).exists()]
    assert not left, f"tap devices left on the node: {left}"


@pytest.mark.timeout(1200)
def test_d_a_vm_keeps_its_network_across_agent_and_kubelet_restarts_and_a_new_vm_starts(
        kv_cluster: Cluster, lan_dhcp: Path) -> None:
    """The agent's pod deleted (its DaemonSet makes a new one), then the kubelet restarted, while a VM runs: the
    LAN still reaches the guest, the launcher pod and its macvtap link are the same ones; then a new VM starts and
    gets on the LAN."""
    c = kv_cluster
    mac = mac_of(create_vm(c, "steady"))
    wait_vmi_running(c, "steady")
    pod = launcher_pod(c, "steady")
    ip = wait_lease(c, pod, mac)["ip"]
    link = macvtap_links(c, pod)[0]
    assert lan_ping(ip), "the LAN got no reply before the restarts"

    old_agent = c.agent_pod()
    c.kubectl("delete", "pod", "-n", AGENT_NS, old_agent["metadata"]["name"], "--wait=true", timeout=120)

    def new_agent_ready() -> bool:
        pods = json.loads(c.kubectl("get", "pods", "-n", AGENT_NS, "-l", "app.kubernetes.io/name=macvtapctl-agent",
                                    "-o", "json").out)["items"]
        return any(p["metadata"]["uid"] != old_agent["metadata"]["uid"] and any(
            k["type"] == "Ready" and k["status"] == "True" for k in p["status"].get("conditions") or []) for p in pods)

    wait_for("a new agent pod Ready", new_agent_ready, timeout=180, interval=1)
    assert lan_ping(ip), "the LAN lost the guest after the agent restarted"

    c.node.restart_kubelet()
    wait_for("the kubelet to serve", c.node.kubelet_healthy, timeout=120, interval=0.5)
    assert lan_ping(ip), "the LAN lost the guest after the kubelet restarted"
    same = launcher_pod(c, "steady")
    assert same["metadata"]["uid"] == pod["metadata"]["uid"]
    assert (vmi(c, "steady") or {}).get("status", {}).get("phase") == "Running"
    assert [(k["ifindex"], k["address"]) for k in macvtap_links(c, same)] == [(link["ifindex"], mac)]

    after_mac = mac_of(create_vm(c, "after-restarts"))
    wait_vmi_running(c, "after-restarts")
    after_ip = wait_lease(c, launcher_pod(c, "after-restarts"), after_mac)["ip"]
    assert lan_ping(after_ip), f"the LAN got no reply from the new VM at {after_ip}"
    c.kubectl("delete", "vm", "-n", POD_NS, "steady", "after-restarts", "--wait=true", timeout=180)


def user_nad(c: Cluster, tmp_path: Path, name: str, **conf: Any) -> None:
    """A NAD for the dataplane resource written with kubectl, as users copy them from issue threads."""
    obj = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": POD_NS,
                        "annotations": {"k8s.v1.cni.cncf.io/resourceName": f"macvtap.network.kubevirt.io/{NETWORK}"}},
           "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": name, "type": "macvtap", **conf})}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(obj))
    c.kubectl("apply", "-f", str(path))


def doctor_finding(c: Cluster, vm: str, finding_id: str) -> dict[str, Any] | None:
    """The finding `doctor VM` leads with, if it is finding_id (its errors come first, the workloads' first)."""
    report = c.mvc("doctor", vm, "-n", POD_NS, "-o", "json", check=False)
    errors = [f for f in doctor_findings(report) if f["severity"] == "error"]
    return errors[0] if errors and errors[0]["id"] == finding_id and report.code == ExitCode.FINDINGS else None


def run_fix(c: Cluster, fix: str) -> None:
    """The printed fix, run as printed: commands joined by &&, each macvtapctl or kubectl."""
    for part in fix.split(" && "):
        argv = shlex.split(part)
        assert argv[0] in ("macvtapctl", "kubectl"), fix
        (c.mvc if argv[0] == "macvtapctl" else c.kubectl)(*argv[1:])


@pytest.mark.timeout(900)
def test_e1_a_tap_qemu_cannot_open_is_named_by_doctor_and_its_fix_starts_the_vm(
        kv_cluster: Cluster, lan_dhcp: Path, tmp_path: Path) -> None:
    """A NAD with owner/group 0 (the CNI then gives /dev/tapN to root, mode 0600): KubeVirt's launcher cannot open
    it as qemu (uid 107) and the VM does not start; `doctor VM` leads with the cause read from KubeVirt's own
    events; its printed fix rewrites the NAD and gets a new launcher pod, and the VM runs on the LAN."""
    c = kv_cluster
    user_nad(c, tmp_path, "rootnet", owner=0, group=0)
    create_vm(c, "tapvm", network="rootnet")
    found = wait_for("doctor naming the tap qemu cannot open", lambda: doctor_finding(c, "tapvm", "workload-tap-denied"),
                     timeout=240, interval=5)
    assert "/dev/tap" in found["cause"] and "rootnet" in found["cause"], found
    assert (vmi(c, "tapvm") or {}).get("status", {}).get("phase") != "Running"
    run_fix(c, found["fix"])
    running = wait_vmi_running(c, "tapvm")
    mac = next(i["mac"] for i in running["status"]["interfaces"] if i.get("name") == "rootnet")
    lease = wait_lease(c, launcher_pod(c, "tapvm"), mac)
    assert lan_ping(lease["ip"])
    assert doctor_finding(c, "tapvm", "workload-tap-denied") is None
    c.kubectl("delete", "vm", "-n", POD_NS, "tapvm", "--wait=true", timeout=180)
    c.kubectl("delete", "net-attach-def", "-n", POD_NS, "rootnet")


@pytest.mark.timeout(900)
def test_e2_a_nad_mtu_above_the_lower_devices_is_named_by_doctor_and_its_fix_starts_the_vm(
        kv_cluster: Cluster, lan_dhcp: Path, tmp_path: Path) -> None:
    """A NAD asking for MTU 9000 on the 1500-byte lower device: the CNI refuses the launcher pod's sandbox, the VM
    never gets a pod; `doctor VM` leads with that refusal and its fix (the NAD rewritten with the lower device's
    MTU); the kubelet's next sandbox attempt succeeds and the VM runs on the LAN."""
    c = kv_cluster
    user_nad(c, tmp_path, "jumbo", mtu=9000)
    create_vm(c, "jumbovm", network="jumbo")
    found = wait_for("doctor naming the MTU refusal", lambda: doctor_finding(c, "jumbovm", "workload-mtu"),
                     timeout=240, interval=5)
    assert "9000" in found["cause"], found
    assert shlex.split(found["fix"])[:3] == ["macvtapctl", "nad", "create"] and "--mtu 1500" in found["fix"], found
    run_fix(c, found["fix"])
    running = wait_vmi_running(c, "jumbovm")
    mac = next(i["mac"] for i in running["status"]["interfaces"] if i.get("name") == "jumbo")
    lease = wait_lease(c, launcher_pod(c, "jumbovm"), mac)
    assert lan_ping(lease["ip"])
    assert doctor_finding(c, "jumbovm", "workload-mtu") is None
    c.kubectl("delete", "vm", "-n", POD_NS, "jumbovm", "--wait=true", timeout=180)
    c.kubectl("delete", "net-attach-def", "-n", POD_NS, "jumbo")


@pytest.mark.timeout(300)
def test_f_doctor_s_dhcp_probe_sees_the_lans_server_and_its_absence(kv_cluster: Cluster, lan_dhcp: Path) -> None:
    """`doctor --probe-dhcp dataplane`: the agent's DISCOVER on the lower device gets the LAN dnsmasq's offer;
    with the server stopped, no offer, said as the reason a DHCP guest would get no address. Read-only: no link
    is left on the node."""
    c = kv_cluster

    def probe() -> list[dict[str, Any]]:
        r = c.mvc("doctor", "-A", "--probe-dhcp", NETWORK, "-o", "json", check=False)
        assert r.code in (0, ExitCode.FINDINGS), r.err
        return [f for f in json.loads(r.out)["findings"] if f["id"].startswith("dhcp-")]

    # Each node's agent asks on its own lower device; both are ports of the one LAN (two nodes: issue 38).
    nodes = sorted(f"node/{n}" for n in (NODE_NAME, *([c.second.name] if c.second else [])))
    offers = probe()
    assert sorted(f["object"] for f in offers) == nodes, offers
    assert all(f["id"] == "dhcp-offer" and "from 198.51.100.1" in f["cause"] for f in offers), offers
    c.node.stop_lan_dhcp()
    try:
        nones = probe()
        assert sorted(f["object"] for f in nones) == nodes, nones
        assert all((f["id"], f["severity"]) == ("dhcp-no-offer", "warning") and "no DHCP offer" in f["cause"]
                   for f in nones), nones
    finally:
        c.node.start_lan_dhcp()
    no_mvt_links()
