"""The cluster the real-node suites run on, and its one lifecycle: control plane -> node(s) -> (KubeVirt) -> the
macvtap plugin, torn down in reverse, also after a start that failed half-way (tests/e2e, tests/e2e_kubevirt and
tests/compat all start theirs here). `Cluster` is what the tests do to it: run macvtapctl and kubectl as a user
would, make pods, read the node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macvtapctl.kube.resources import CONFIGMAP, DAEMONSET, NODE, Resource
from tests.harness import host_state
from tests.harness.controlplane import NODE_NAME, ControlPlane, kubevirt_pins, kubevirt_runtime_version
from tests.harness.images import AGENT_IMAGE, TEST_IMAGE
from tests.harness.kubevirt import KubeVirt
from tests.harness.node import LAN_NETNS, LAN_PEER_IP, LOWER, Node, NodeError
from tests.harness.second_node import SecondNode

POD = Resource("", "v1", "pods", "Pod")
RESOURCE = "macvtap.network.kubevirt.io/dataplane"
NETWORK = "dataplane"
AGENT_NS = "macvtap"
CAPACITY = 8
POD_NS = "default"
NAD_MTU = 1400  # below the lower device's 1500, so the pod interface shows it came from the NAD


@dataclass
class Done:
    code: int
    out: str
    err: str


def doctor_findings(r: Any) -> list[dict[str, Any]]:
    """`doctor -o json`'s findings. A doctor that crashed or printed nothing fails the test here: its silence is no
    verdict, so "the finding went away" must not pass on it (issue 37)."""
    assert r.code in (0, 8), f"doctor exited {r.code}: {r.err}"
    findings = json.loads(r.out)["findings"]
    assert isinstance(findings, list), r.out
    return findings


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll until check() is truthy; the failure says what was awaited and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def no_mvt_links(timeout: float = 60) -> None:
    """Wait until the node has no temporary links; the failure shows them and the agent's last log lines."""
    try:
        wait_for("no mvt* links on the node", lambda: not host_links(), timeout=timeout)
    except AssertionError as exc:
        links = subprocess.run(["ip", "-d", "link", "show"], capture_output=True, text=True, check=False).stdout
        mvt = "\n".join(line for line in links.splitlines() if "mvt" in line)
        log = "".join(p.read_text(errors="replace") for p in Path("/var/log/pods").glob("macvtap_*/agent/*.log"))
        raise AssertionError(f"{exc}\n{mvt}\nagent log:\n{log[-4000:]}") from None


def host_links(prefix: str = "mvt") -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], check=True, capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out) if link["ifname"].startswith(prefix)}


def pod_netns() -> set[str]:
    d = Path("/run/netns")
    return {p.name for p in d.glob("cni-*")} if d.is_dir() else set()


class Cluster:
    def __init__(self, cp: ControlPlane, node: Node, second: SecondNode | None = None) -> None:
        self.cp = cp
        self.node = node
        self.second = second  # a second node in its own namespaces (second_node.py), or None
        self.close: Callable[[], None] = lambda: None  # stops it all, once (the fixture's teardown sets it)
        self.host_before: dict[str, Any] = {}  # host_state.snapshot() before anything started
        self.kubeconfig = str(cp.admin_kubeconfig)
        self.kubectl_bin = str(Path(json.loads((cp.dir / "state.json").read_text())["bin"]) / "kubectl")

    # --- running things as a user would ---
    def mvc(self, *args: str, check: bool = True) -> Done:
        p = subprocess.run([sys.executable, "-m", "macvtapctl", "--kubeconfig", self.kubeconfig, *args],
                           check=False, capture_output=True, text=True, timeout=400, env={**os.environ, "NO_COLOR": "1"})
        done = Done(p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"macvtapctl {' '.join(args)} exited {p.returncode}:\n{p.stderr}{p.stdout}")
        return done

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> Done:
        p = subprocess.run([self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args], check=False,
                           capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {p.returncode}:\n{p.stderr}{p.stdout}")
        return Done(p.returncode, p.stdout, p.stderr)

    def exec(self, pod: str, *cmd: str, check: bool = True) -> Done:
        """kubectl exec; retried while the kubelet cannot serve it yet (right after a kubelet restart it answers
        "pod does not exist" until it has synced its pods)."""
        deadline = time.monotonic() + 30
        while True:
            done = self.kubectl("exec", "-n", POD_NS, pod, "--", *cmd, check=False)
            if "unable to upgrade connection" not in done.err or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if check and done.code != 0:
            raise AssertionError(f"kubectl exec {pod} -- {' '.join(cmd)} exited {done.code}:\n{done.err}{done.out}")
        return done

    def kube(self) -> Any:
        return self.cp.kube()

    # --- the deployment under test ---
    def deploy(self) -> None:
        self.mvc("setup", LOWER, "--name", NETWORK, "--capacity", str(CAPACITY), "--mtu", str(NAD_MTU),
                 "--dp-namespace", AGENT_NS)
        self.mvc("install", "--image", AGENT_IMAGE, "--cni-bin-dir", str(self.node.cni_bin), "--wait",
                 "--timeout", "3m")

    def teardown(self) -> None:
        with self.kube() as kube:
            for pod in kube.list(POD, POD_NS):
                kube.delete(POD, pod["metadata"]["name"], POD_NS)
        wait_for("test pods to be gone", lambda: not self.pods(), timeout=120)

    def agent_pod(self, node: str = NODE_NAME) -> dict[str, Any]:
        """The agent's pod on `node` (the first node unless told)."""
        with self.kube() as kube:
            pods = [p for p in kube.list(POD, AGENT_NS, label_selector="app.kubernetes.io/name=macvtapctl-agent")
                    if p["spec"].get("nodeName") == node]
        assert len(pods) == 1, f"expected one agent pod on {node}, found {[p['metadata']['name'] for p in pods]}"
        return dict(pods[0])

    def dp_config(self) -> str:
        with self.kube() as kube:
            return str(kube.get(CONFIGMAP, "macvtap-deviceplugin-config", AGENT_NS)["data"]["DP_MACVTAP_CONF"])

    def set_dp_config(self, text: str) -> None:
        with self.kube() as kube:
            kube.merge_patch(CONFIGMAP, "macvtap-deviceplugin-config", {"data": {"DP_MACVTAP_CONF": text}},
                             AGENT_NS)

    def node_obj(self) -> dict[str, Any]:
        with self.kube() as kube:
            return dict(kube.get(NODE, NODE_NAME))

    def capacity(self, resource: str = RESOURCE, field: str = "capacity") -> int | None:
        value = self.node_obj()["status"].get(field, {}).get(resource)
        return int(value) if value is not None else None

    def daemonset(self) -> dict[str, Any]:
        with self.kube() as kube:
            return dict(kube.get(DAEMONSET, "macvtapctl-agent", AGENT_NS))

    # --- pods ---
    def make_pod(self, name: str, *, networks: list[dict[str, Any]] | None = None, units: int = 1,
                 resource: str = RESOURCE) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": POD_NS, "labels": {"e2e": "macvtap"}}
        if networks is not None:
            meta["annotations"] = {"k8s.v1.cni.cncf.io/networks": json.dumps(networks)}
        container: dict[str, Any] = {"name": "main", "image": TEST_IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sleep", "3600"]}
        if units:
            container["resources"] = {"limits": {resource: str(units)}}
        with self.kube() as kube:
            kube.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                              "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}}, POD_NS)

    def pod(self, name: str) -> dict[str, Any] | None:
        with self.kube() as kube:
            obj = kube.get_or_none(POD, name, POD_NS)
        return dict(obj) if obj is not None else None

    def pods(self) -> list[str]:
        with self.kube() as kube:
            return [p["metadata"]["name"] for p in kube.list(POD, POD_NS)]

    def wait_running(self, name: str, timeout: float = 90) -> dict[str, Any]:
        def running() -> dict[str, Any] | None:
            pod = self.pod(name)
            ready = pod and any(c["type"] == "Ready" and c["status"] == "True"
                                for c in pod.get("status", {}).get("conditions", []))
            return pod if ready else None

        try:
            return dict(wait_for(f"pod {name} Ready", running, timeout=timeout))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nevents:\n{self.events(name)}") from None

    def events(self, name: str) -> str:
        return self.kubectl("get", "events", "-n", POD_NS, "--field-selector", f"involvedObject.name={name}",
                            "-o", "custom-columns=REASON:.reason,MESSAGE:.message", check=False).out[-3000:]

    def delete_pods(self, *names: str, wait: bool = True) -> None:
        with self.kube() as kube:
            for name in names:
                if kube.get_or_none(POD, name, POD_NS) is not None:
                    kube.delete(POD, name, POD_NS)
        if wait:
            wait_for(f"pods {names} gone", lambda: not set(names) & set(self.pods()), timeout=120)

    def interface(self, pod: str, ifname: str = "net1") -> dict[str, str]:
        """What the pod sees of its interface, read from inside the container."""
        script = (f"cd /sys/class/net/{ifname} && echo ifindex=$(cat ifindex) && echo iflink=$(cat iflink) && "
                  f"echo mac=$(cat address) && echo mtu=$(cat mtu) && echo taps=$(ls -d tap* 2>/dev/null) && "
                  f"for t in /dev/tap*; do echo dev=$t:$(stat -c %u:%g $t); done")
        out = self.exec(pod, "sh", "-c", script).out
        info: dict[str, str] = {}
        for line in out.splitlines():
            key, _, value = line.partition("=")
            info[key] = (info[key] + " " + value) if key in info else value
        return info

    def make_launcher_pod(self, name: str, vm: dict[str, Any]) -> dict[str, str]:
        """A pod standing in for a VM's virt-launcher, with what KubeVirt's virt-controller derives from the VM for
        macvtap: per multus network, the Multus selection (NAD, namespace, the interface's MAC, the pod interface
        name `pod` + sha256(network name)[:11]) and one unit of the NAD's resource. Returns network -> pod ifname."""
        import hashlib

        from macvtapctl.kube.resources import NAD

        spec = vm["spec"]["template"]["spec"]
        macs = {i["name"]: i.get("macAddress") for i in spec["domain"]["devices"]["interfaces"]}
        selections, limits, ifnames = [], {}, {}
        with self.kube() as kube:
            for net in spec["networks"]:
                if "multus" not in net:
                    continue
                ns, _, nad = net["multus"]["networkName"].rpartition("/")
                ns = ns or POD_NS
                ifname = "pod" + hashlib.sha256(net["name"].encode()).hexdigest()[:11]
                sel = {"name": nad, "namespace": ns, "interface": ifname}
                if macs.get(net["name"]):
                    sel["mac"] = macs[net["name"]]
                selections.append(sel)
                ifnames[net["name"]] = ifname
                res = kube.get(NAD, nad, ns)["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"]
                limits[res] = str(int(limits.get(res, "0")) + 1)
        meta = {"name": name, "namespace": POD_NS, "labels": {"e2e": "macvtap", "kubevirt.io/vm": vm["metadata"]["name"]},
                "annotations": {"k8s.v1.cni.cncf.io/networks": json.dumps(selections)}}
        container = {"name": "compute", "image": TEST_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"],
                     "resources": {"limits": limits}}
        with self.kube() as kube:
            kube.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                              "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}}, POD_NS)
        return ifnames

    def agent_container(self) -> str:
        """The agent pod's container, as its status names it (containerd://ID)."""
        return str(self.agent_pod()["status"]["containerStatuses"][0]["containerID"])

    def agent_pid(self) -> int:
        """The agent's host PID, from containerd's task of the agent pod's own container (not a command-line
        match, which any process named like it would satisfy)."""
        return self.node.container_pid(self.agent_container())

    def container_running(self, container_id: str) -> bool:
        try:
            self.node.container_pid(container_id)
        except NodeError:
            return False
        return True

    def container_pid(self, pod: str) -> int:
        obj = self.pod(pod)
        assert obj is not None
        return self.node.container_pid(obj["status"]["containerStatuses"][0]["containerID"])

    def arp(self, pod: str, tap: str, mac: str, src_ip: str = "198.51.100.77") -> Done:
        return self.exec(pod, "taptool", "arp", tap, mac, src_ip, LAN_PEER_IP, check=False)


def lan_ip(*args: str) -> str:
    return subprocess.run(["ip", "-n", LAN_NETNS, *args], check=True, capture_output=True, text=True).stdout


def lower_index() -> int:
    return int(Path(f"/sys/class/net/{LOWER}/ifindex").read_text())




class StartFailed(Exception):
    """A real part did not start: the message says which, and where its logs are."""


@contextmanager
def running_cluster(workdir: Path, *, kubevirt: bool = False, nodes: int = 1,
                    images: Callable[[Path], object] | None = None,
                    deploy: Callable[[Cluster], None] | None = Cluster.deploy) -> Iterator[Cluster]:
    """A control plane of its own in `workdir` (what one suite deploys never leaks into another's), the real node
    (`nodes`: 2 adds the second, in its own namespaces on the same LAN), with `kubevirt` KubeVirt's own components
    deployed by virt-operator; `images` builds more images into the node's image directory (imported with the
    others); `deploy` puts the macvtap plugin on it (by default the agent, as `macvtapctl install` does; None:
    nothing). StartFailed names the part that did not start. The cluster's `close()` stops it all, once (also on
    exit), whatever was started."""
    before = host_state.snapshot()
    if kubevirt:
        version = kubevirt_runtime_version()
        cp = ControlPlane(workdir, kubevirt_version=version, crds="runtime", kubevirt_pin=version)
    else:
        # in_cluster: the agent follows its ConfigMap through the `kubernetes` Service, as in a real cluster.
        cp = ControlPlane(workdir, kubevirt_version="v1.5.0", kubevirt_pin=kubevirt_pins()[-1], in_cluster=True)
    try:
        cp.start()
    except Exception as exc:
        cp.stop()
        raise StartFailed(f"local control plane did not start: {exc}") from exc
    node = Node(cp.dir)
    c = Cluster(cp, node, SecondNode(cp.dir) if nodes == 2 else None)
    c.host_before = before
    what = "the real node"
    try:
        if images is not None:
            node.images.mkdir(parents=True, exist_ok=True)
            images(node.images)
        node.up()
        if c.second is not None:
            what = "the second node"
            c.second.up()
        if kubevirt:
            what = "KubeVirt on the real node"
            KubeVirt(cp.dir).up()
        if deploy is not None:
            what = "the macvtap plugin"
            deploy(c)
    except Exception as exc:
        try:
            node.down()  # the second node first (node.py)
        finally:
            cp.stop()
        raise StartFailed(f"{what} did not start: {exc}\n(logs: {node.dir})") from exc
    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            if kubevirt:  # VMs first: their controller would start a new launcher for every pod the teardown deletes
                c.kubectl("delete", "vm", "--all", "-n", POD_NS, "--wait=true", timeout=180, check=False)
            c.teardown()
        finally:
            try:
                node.down()  # the second node first (node.py)
            finally:
                cp.stop()

    c.close = close
    try:
        yield c
    finally:
        close()


@contextmanager
def lan_dhcp(c: Cluster) -> Iterator[Path]:
    """The LAN's DHCP server (dnsmasq on the LAN namespace's interface, node.py); yields its lease file."""
    leases = c.node.start_lan_dhcp()
    try:
        yield leases
    finally:
        c.node.stop_lan_dhcp()
