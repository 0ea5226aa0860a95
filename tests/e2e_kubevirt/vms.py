"""The KubeVirt tests' VMs: written by `macvtapctl vm create --apply`, started by KubeVirt, read back from the
API, the launcher pod, the guest's serial console (tests/harness/guest.py prints its DHCP leases and the LAN peers it
reached) and the node's links. Not a conftest: the tests import it."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.harness import guest
from tests.harness.cluster import NETWORK, POD_NS, Cluster, wait_for
from tests.harness.controlplane import NODE_NAME
from tests.harness.node import LAN_NETNS

VMI_TIMEOUT = 300  # TCG: the launcher image is large and the guest boots without KVM


def create_vm(c: Cluster, name: str, *extra: str, network: str = NETWORK,
              node: str | None = NODE_NAME) -> dict[str, Any]:
    """`vm create --apply` as a user writes it, placed on `node` (`--node`; None: where the scheduler puts it). The
    first node by default: the one-node tests read its links and restart its kubelet."""
    pin = ("--node", node) if node else ()
    c.mvc("vm", "create", name, "-n", POD_NS, "--network", network, "--mac", "auto", "--memory", "256Mi",
          "--image", guest.CONTAINERDISK_IMAGE, "--apply", *pin, *extra)
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
    found = []
    for netns in [None, *sorted(p.name for p in Path("/run/netns").glob("*"))]:
        cmd = ["ip", "-j", "link", "show"] if netns is None else ["ip", "-n", netns, "-j", "link", "show"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            found += [f"{netns or 'host'}/{link['ifname']}" for link in json.loads(done.stdout or "[]")
                      if link.get("address") == mac]
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
