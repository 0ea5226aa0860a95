"""The KubeVirt tests' VMs: written by `macvtapctl vm create --apply`, started by KubeVirt, read back from the
API, the launcher pod, the guest's serial console (tests/harness/guest.py prints its DHCP leases and the LAN peers it
reached) and the node's links. Not a conftest: the tests import it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import guest, l2probe
from tests.harness.cluster import NETWORK, POD_NS, RESOURCE, Cluster, wait_for
from tests.harness.controlplane import NODE_NAME
from tests.harness.images import TEST_IMAGE
from tests.harness.node import LAN_NETNS
from tests.harness.second_node import NAME as NODE_B

GRACE_SECONDS = 1
VMI_TIMEOUT = 300  # TCG: the launcher image is large and the guest boots without KVM


def create_vm(c: Cluster, name: str, *extra: str, network: str = NETWORK,
              node: str | None = NODE_NAME) -> dict[str, Any]:
    """`vm create --apply` as a user writes it, placed on `node` (`--node`; None: where the scheduler puts it). The
    first node by default: the one-node tests read its links and restart its kubelet."""
    pin = ("--node", node) if node else ()
    # The test guest has no ACPI daemon, so each stop would wait out KubeVirt's default 30 s grace before the kill:
    # 1 s, unless a test sets its own (issue 37: CI's budget).
    grace = () if "--termination-grace-period" in extra else ("--termination-grace-period", str(GRACE_SECONDS))
    c.mvc("vm", "create", name, "-n", POD_NS, "--network", network, "--mac", "auto", "--memory", "256Mi",
          "--image", guest.CONTAINERDISK_IMAGE, "--apply", *pin, *grace, *extra)
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
    """The guest's serial console so far, complete lines only (a read can end in the middle of one)."""
    out = c.kubectl("logs", "-n", POD_NS, pod, "-c", "guest-console-log", check=False).out
    return out[:out.rfind("\n") + 1]


def leases_on_console(c: Cluster, pod: str) -> dict[str, dict[str, str]]:
    """The guest's DHCP leases by MAC, as its init printed them on the serial console."""
    found: dict[str, dict[str, str]] = {}
    for line in console(c, pod).splitlines():
        m = re.search(r"MVT-LEASE (.*)", line)
        if m:
            fields = dict(kv.split("=", 1) for kv in m.group(1).split())
            found[fields["mac"]] = fields
    return found


def reached_on_console(c: Cluster, pod: str) -> list[dict[str, str]]:
    """The peers the guest found on the LAN (a broadcast ping, then a unicast one), as its init printed them."""
    return [dict(kv.split("=", 1) for kv in m.group(1).split())
            for m in re.finditer(r"MVT-REACH (.*)", console(c, pod))]


def mac_of(vm: dict[str, Any]) -> str:
    ifaces = {i["name"]: i for i in vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]}
    return str(ifaces[NETWORK]["macAddress"])


def wait_lease(c: Cluster, pod: dict[str, Any], mac: str) -> dict[str, str]:
    return dict(wait_for(f"the DHCP lease of {mac} on the guest's console", lambda: leases_on_console(
        c, pod["metadata"]["name"]).get(mac), timeout=180, interval=2))


def macvtap_links(c: Cluster, pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [link for link in pod_links(c, pod) if (link.get("linkinfo") or {}).get("info_kind") == "macvtap"]


def links_with_mac(mac: str) -> list[str]:
    """Every link on the node with this MAC: the host's namespace and every named one (the pods')."""
    return list(links_up_with_mac(mac))


def links_up_with_mac(mac: str) -> dict[str, bool]:
    """The node's links with this MAC ("netns/ifname", as links_with_mac) and whether each is administratively up."""
    found = {}
    for netns in [None, *sorted(p.name for p in Path("/run/netns").glob("*"))]:
        cmd = ["ip", "-j", "link", "show"] if netns is None else ["ip", "-n", netns, "-j", "link", "show"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            found |= {f"{netns or 'host'}/{link['ifname']}": "UP" in link.get("flags", [])
                      for link in json.loads(done.stdout or "[]") if link.get("address") == mac}
    return found


def set_run_strategy(c: Cluster, name: str, strategy: str) -> None:
    c.kubectl("patch", "vm", "-n", POD_NS, name, "--type", "merge", "-p",
              json.dumps({"spec": {"runStrategy": strategy}}))


def wait_stopped(c: Cluster, name: str) -> None:
    wait_for(f"VM {name}'s VMI and launcher pod gone", lambda: vmi(c, name) is None and not launcher_pods(c, name),
             timeout=180, interval=1)


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


NEIGHBOUR_IP = "198.51.100.30"  # static, outside the LAN's DHCP range
ARRIVAL_IP = "198.51.100.31"  # a neighbour on the target node: static, outside the LAN's DHCP range


def neighbour_pod(c: Cluster, name: str, node: str, ip: str = NEIGHBOUR_IP) -> dict[str, Any]:
    """A pod on `node` with a macvtap NIC on the LAN (NETWORK) and a static address: a VM's neighbour on its NIC."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": POD_NS, "annotations": {"k8s.v1.cni.cncf.io/networks": NETWORK}},
           "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{
               "name": "main", "image": TEST_IMAGE, "imagePullPolicy": "Never",
               "command": ["sh", "-c", f"ip addr add {ip}/24 dev net1 && sleep 3600"],
               "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
               "resources": {"limits": {RESOURCE: "1"}}}]}}
    path = Path(c.node.dir) / f"{name}.json"
    path.write_text(json.dumps(pod))
    c.kubectl("apply", "-f", str(path))
    return c.wait_running(name, timeout=120)


@contextmanager
def on_the_lan(ip: str, mac: str, *more: l2probe.Pinger) -> Iterator[tuple[l2probe.Pinger, l2probe.FdbWatch]]:
    """The LAN pinging `ip` every 10 ms (and `more` pingers), then the LAN switch's FDB watched for `mac`; all
    stopped on the way out."""
    lan = l2probe.Pinger(LAN_NETNS, ip, 300)
    for pinger in (lan, *more):
        pinger.start()
    time.sleep(2)
    fdb = l2probe.FdbWatch(LAN_NETNS, mac)
    try:
        yield lan, fdb
    finally:
        for pinger in (lan, *more):
            pinger.stop(now=True)
        fdb.stop()


def discovers(log: Path, mac: str) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if "DHCPDISCOVER" in line and mac in line)


def vm_on_node_a(c: Cluster, name: str, *extra: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A VM the scheduler placed (a pinned one cannot move) on node A: its MAC, launcher pod and DHCP lease."""
    c.kubectl("cordon", NODE_B)
    try:
        mac = mac_of(create_vm(c, name, *extra, node=None))
        assert wait_vmi_running(c, name)["status"]["nodeName"] == NODE_NAME
    finally:
        c.kubectl("uncordon", NODE_B)
    pod = launcher_pod(c, name)
    return mac, pod, wait_lease(c, pod, mac)


def pid_of(c: Cluster, pod: dict[str, Any], container: str = "main") -> int:
    """The host PID of a container of a pod on node A."""
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
    return c.node.container_pid(status["containerID"])


def in_pod_netns(c: Cluster, pod: dict[str, Any]) -> list[str]:
    """The command prefix that runs a host program in the pod's network namespace, on either node. Node B's
    containerd reports PIDs of a PID namespace (and a /proc) of its own, so there the host process is found by
    what the kubelet gives every container: HOSTNAME=<pod name> in its environment."""
    if pod["spec"].get("nodeName") != NODE_B:
        return ["nsenter", f"--net=/proc/{pid_of(c, pod)}/ns/net"]
    want = f"HOSTNAME={pod['metadata']['name']}".encode()
    host_net = os.stat("/proc/self/ns/net").st_ino
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if want in (proc / "environ").read_bytes().split(b"\0") and \
                    os.stat(proc / "ns" / "net").st_ino != host_net:
                return ["nsenter", f"--net=/proc/{proc.name}/ns/net"]
        except OSError:
            continue  # ended meanwhile
    raise AssertionError(f"no process of pod {pod['metadata']['name']} found on the host")


@dataclass
class Moved:
    """One `vm migrate --wait` under pings: its report and what the peers saw, until the source pod ended."""

    result: dict[str, Any]  # vm migrate --wait -o json
    seconds: float  # the command's own time
    lan_gap: float  # ms, the LAN's longest time without a reply
    lan_lost: int
    beside_gap: float  # ms, the neighbour's on the source node's NIC (kubevirt#5912's victim)
    beside_lost: int
    fdb: list[tuple[float, str]]  # (time, LAN switch port) each time the VM's MAC was learnt somewhere else
    arrival_gap: float | None = None  # ms, a neighbour's on the target node's NIC (when one was given)
    arrival_lost: int | None = None

    def row(self) -> str:
        return (f"migration {self.seconds:.1f}s; LAN: max gap {self.lan_gap:.0f} ms, {self.lan_lost} lost; neighbour "
                f"on the source node: max gap {self.beside_gap:.0f} ms, {self.beside_lost} lost; FDB: "
                f"{[port for _, port in self.fdb]}" + (
                    f"; neighbour on the target node: max gap {self.arrival_gap:.0f} ms, {self.arrival_lost} lost"
                    if self.arrival_gap is not None else ""))


def measured_migration(c: Cluster, name: str, mac: str, ip: str, to: str, neighbour: dict[str, Any],
                       arrival: dict[str, Any] | None = None) -> Moved:
    """`vm migrate NAME --to TO --wait` while the LAN and `neighbour` (a pod on the source node A) ping the VM every
    10 ms (and `arrival`, a pod on the target node, when given); the window ends a second after the source pod has
    ended (without a hand-off, the neighbour's gap lasts until then)."""
    beside = l2probe.Pinger(None, ip, 300, enter=in_pod_netns(c, neighbour))
    there = l2probe.Pinger(None, ip, 300, enter=in_pod_netns(c, arrival)) if arrival else None
    source = (vmi(c, name) or {}).get("status", {}).get("nodeName")
    with on_the_lan(ip, mac, beside, *([there] if there else [])) as (lan, fdb):
        start = time.time()
        moved = c.mvc("vm", "migrate", name, "-n", POD_NS, "--to", to, "--wait", "--timeout", "10m", "-o", "json",
                      check=False)
        done = time.time()
        wait_for(f"{name}'s source pod to end", lambda: not [
            p for p in launcher_pods(c, name) if p["spec"].get("nodeName") == source
            and p["status"].get("phase") in ("Pending", "Running")], timeout=120, interval=0.5)
        time.sleep(1)
        end = time.time()
    assert moved.code == 0, moved.err + moved.out
    return Moved(json.loads(moved.out), done - start, lan.gap_after(start, end), lan.lost(start, end),
                 beside.gap_after(start, end), beside.lost(start, end), list(fdb.moves),
                 there.gap_after(start, end) if there else None, there.lost(start, end) if there else None)
