"""A live switch on the real node (kubelet, containerd, runc, Multus): upstream macvtap-cni deployed from its own
manifest (templates/macvtap.yaml.in in ../shared/upstream, image built here from that source) serves a pod;
`install --take-over` switches the node to the agent and `uninstall --restore-upstream` gives it back. Across
both: the user's ConfigMap is not written, the running pod keeps its interface and its frames pass, a new pod
runs, and the DEL of a pod the other plugin attached leaves nothing. Neither switch has a gap (issue 37 item 5):
a pod asking for the resource is created every second through each of them, and every one runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.agent.cni_bin import SHIM_MARKER
from macvtapctl.kube.resources import CONFIGMAP, DAEMONSET, NAMESPACE, POD
from tests.harness.cluster import (
    CAPACITY,
    NETWORK,
    POD_NS,
    Cluster,
    StartFailed,
    lan_ip,
    no_mvt_links,
    running_cluster,
    wait_for,
)
from tests.harness.images import AGENT_IMAGE
from tests.harness.upstream_node import CM, CONF, UP_NS, UPSTREAM_IMAGE, upstream_image, upstream_manifest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import os

    if os.geteuid() != 0:
        pytest.fail("the real-node compat tests need root", pytrace=False)
    try:
        # upstream's image is imported with the node's other images; no plugin deployed: the test deploys upstream.
        with running_cluster(tmp_path_factory.mktemp("switch-controlplane"), images=upstream_image, deploy=None) as c:
            yield c
    except StartFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def _pod_mac(i: int) -> str:
    return f"02:00:5e:20:00:{i:02x}"


def _frames_pass(c: Cluster, pod: str, mac: str) -> dict[str, str]:
    info = c.interface(pod)
    assert info["mac"] == mac and info["taps"] == f"tap{info['ifindex']}", info
    done = c.arp(pod, f"/dev/tap{info['ifindex']}", mac)
    assert done.code == 0, done.err
    assert json.loads(lan_ip("-j", "link", "show", "lan0"))[0]["address"] in done.out
    return info


def _serving(c: Cluster) -> list[tuple[str, str]]:
    with c.kube() as k:
        from macvtapctl.rules import device_plugins as plugins

        return [(p.kind, p.namespace) for p, _ in plugins.find(k.list(DAEMONSET))]


def _agent_pods(c: Cluster) -> list[Any]:
    with c.kube() as k:
        return list(k.list(POD, UP_NS, label_selector="app.kubernetes.io/name=macvtapctl-agent"))


def _cm_version(c: Cluster) -> str:
    with c.kube() as k:
        return str(k.get(CONFIGMAP, CM, UP_NS)["metadata"]["resourceVersion"])


def _shim_is_ours(c: Cluster) -> bool:
    return SHIM_MARKER in (c.node.cni_bin / "macvtap").read_bytes()


def _doctor_ids(c: Cluster) -> set[str]:
    out = c.mvc("doctor", "-o", "json", check=False).out
    return {f["id"] for f in json.loads(out)["findings"]}


class PodFlow(threading.Thread):
    """A pod asking for the resource every second while a switch runs, as a user's workload would: each is
    deleted once Running (its device back for the next), and what became of it recorded. A pod the kubelet admits
    while no plugin serves the resource fails for good (UnexpectedAdmissionError: "no healthy devices present").
    At most LIVE of them exist at once (terminating ones count: the kubelet frees a device only when its pod is
    gone), so that the flow never runs out of the node's CAPACITY devices and a refusal can only be the gap's."""

    LIVE = 4  # of CAPACITY 8: one is the test's own running pod, the rest spare
    PATIENCE = 120.0  # seconds a pod may take to run (scheduling waits for a device while LIVE are out)

    def __init__(self, c: Cluster, prefix: str) -> None:
        super().__init__(name=f"pod-flow-{prefix}", daemon=True)
        self.c, self.prefix = c, prefix
        self.finish = threading.Event()
        self.created: dict[str, float] = {}  # name -> when
        self.ran: set[str] = set()
        self.failed: dict[str, str] = {}  # name -> why
        self.errors: list[str] = []  # the flow's own trouble (API errors): never a pass
        self.waited = 0  # seconds skipped because LIVE pods were out

    def run(self) -> None:
        n = 0
        try:
            while not self.finish.is_set():
                live = self._sweep()
                if live < self.LIVE:
                    name = f"{self.prefix}-{n:03d}"
                    n += 1
                    self.c.make_pod(name, networks=[{"name": NETWORK}])
                    self.created[name] = time.monotonic()
                else:
                    self.waited += 1
                self.finish.wait(1.0)
            deadline = time.monotonic() + self.PATIENCE
            while self._pending() and time.monotonic() < deadline:
                self._sweep()
                time.sleep(1.0)
            self._sweep()
        except Exception as exc:  # reported by check(): the thread must not die silently
            self.errors.append(repr(exc))

    def _pending(self) -> list[str]:
        return [p for p in self.created if p not in self.ran and p not in self.failed]

    def _sweep(self) -> int:
        """One LIST: record each pod that runs or failed and delete it; fail one that never ran in time. Returns
        how many of the flow's pods exist (terminating ones too)."""
        with self.c.kube() as k:
            mine = {p["metadata"]["name"]: p for p in k.list(POD, POD_NS)
                    if p["metadata"]["name"].startswith(self.prefix + "-")}
            for name in self._pending():
                obj = mine.get(name)
                status = (obj or {}).get("status") or {}
                phase = status.get("phase")
                if phase == "Running":
                    self.ran.add(name)
                elif phase == "Failed" or obj is None:
                    self.failed[name] = (f"{status.get('reason')}: {status.get('message')}" if obj is not None
                                         else "deleted before it ran")
                elif time.monotonic() - self.created[name] > self.PATIENCE:
                    waiting = [((cs.get("state") or {}).get("waiting") or {}).get("reason")
                               for cs in status.get("containerStatuses") or []]
                    self.failed[name] = f"not running after {self.PATIENCE:.0f}s ({phase}, {waiting})"
                else:
                    continue
                if obj is not None and not obj["metadata"].get("deletionTimestamp"):
                    k.delete(POD, name, POD_NS)
            return len(mine)

    def check(self, what: str, at_least: int) -> None:
        """Stop the flow, wait for its last pods, and require that every pod ran and that pods were created."""
        self.finish.set()
        self.join(timeout=self.PATIENCE + 60)
        assert not self.is_alive(), f"{what}: the pod flow did not finish"
        assert not self.errors, f"{what}: the pod flow failed: {self.errors}"
        events = {name: self.c.events(name) for name in sorted(self.failed)[:3]}
        assert not self.failed, f"{what}: {len(self.failed)} of {len(self.created)} pod(s) did not run: " \
                                f"{self.failed}\nevents: {events}"
        assert len(self.ran) == len(self.created) >= at_least, \
            f"{what}: {len(self.ran)} of {len(self.created)} pod(s) ran (waited {self.waited}s for devices)"
        wait_for(f"{what}: the flow's pods gone",
                 lambda: not [p for p in self.c.pods() if p.startswith(self.prefix + "-")], timeout=120)


def _through(c: Cluster, prefix: str, *args: str) -> tuple[Any, PodFlow]:
    """Run macvtapctl `args` while a pod is created every second, from before it starts to AFTER seconds after it
    returns (the side that leaves is still going then: its pods end, its sockets close)."""
    flow = PodFlow(c, prefix)
    flow.start()
    time.sleep(3)  # pods already coming when the switch starts
    try:
        r = c.mvc(*args)
    except BaseException:
        flow.finish.set()
        raise
    time.sleep(AFTER)
    return r, flow


AFTER = 20.0


def test_switch_from_macvtap_cni_to_the_agent_and_back(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    with c.kube() as k:
        k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": UP_NS}})
        k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": UP_NS},
                             "data": {"DP_MACVTAP_CONF": CONF}}, UP_NS)
    manifest = tmp_path / "macvtap.yaml"
    manifest.write_text(upstream_manifest(c.node.cni_bin))
    c.kubectl("apply", "-f", str(manifest))
    c.mvc("nad", "create", NETWORK, "--resource", NETWORK, "-n", POD_NS)
    wait_for("macvtap-cni advertises", lambda: c.capacity() == CAPACITY, timeout=120)
    assert not _shim_is_ours(c)
    c.make_pod("under-upstream", networks=[{"name": NETWORK, "mac": _pod_mac(1)}])
    c.wait_running("under-upstream")
    first = _frames_pass(c, "under-upstream", _pod_mac(1))
    cm_version = _cm_version(c)

    # A plain install would compete: refused, nothing written.
    r = c.mvc("install", "--image", AGENT_IMAGE, "--cni-bin-dir", str(c.node.cni_bin), check=False)
    assert r.code == 3 and "pass --take-over" in r.err, r.err
    assert _serving(c) == [("macvtap-cni", UP_NS)]

    # No --cni-bin-dir: the take-over puts the shim where macvtap-cni installed its binary. A pod every second
    # throughout, and every one runs: no moment in which the kubelet has no plugin for the resource.
    r, flow = _through(c, "take-over", "install", "--take-over", "--image", AGENT_IMAGE, "--timeout", "3m")
    flow.check("through the take-over", at_least=10)
    assert f"CNI bin dir {c.node.cni_bin}: where DaemonSet {UP_NS}/macvtap-cni installs its binary" in r.err, r.err
    assert "daemonset.apps/macvtap-cni deleted" in r.err, r.err
    print(r.err)
    assert _serving(c) == [("macvtapctl", UP_NS)]
    assert _cm_version(c) == cm_version  # the user's ConfigMap: not written
    with c.kube() as k:  # no second ConfigMap
        assert [cm["metadata"]["namespace"] for cm in k.list(CONFIGMAP, field_selector=f"metadata.name={CM}")] \
            == [UP_NS]
    assert _shim_is_ours(c)
    wait_for("the agent advertises", lambda: c.capacity() == CAPACITY, timeout=60)
    # The pod attached by macvtap-cni keeps its interface, and its frames pass.
    assert _frames_pass(c, "under-upstream", _pod_mac(1))["ifindex"] == first["ifindex"]
    c.make_pod("under-agent", networks=[{"name": NETWORK, "mac": _pod_mac(2)}])
    c.wait_running("under-agent")
    _frames_pass(c, "under-agent", _pod_mac(2))
    assert "two-device-plugins" not in _doctor_ids(c)
    # DEL of macvtap-cni's pod now goes to the agent: the pod goes, nothing of it is left, its device is back.
    c.delete_pods("under-upstream")
    wait_for("allocatable back", lambda: c.capacity(field="allocatable") == CAPACITY, timeout=60)
    r = c.mvc("install", "--take-over", "--image", AGENT_IMAGE, "--cni-bin-dir", str(c.node.cni_bin))
    assert "unchanged" in r.err and "deleted" not in r.err, r.err  # a second run changes nothing

    # The give-back returns only once the kubelet is connected to macvtap-cni's plugin (it registers 10 s after it
    # starts, after its DaemonSet is rolled out): before, pods admitted right after failed for good.
    r, flow = _through(c, "give-back", "uninstall", "--restore-upstream", "--timeout", "3m")
    print(r.err)
    assert "daemonset.apps/macvtap-cni created" in r.err and "daemonset.apps/macvtapctl-agent deleted" in r.err
    assert "macvtap-cni is registered with the kubelet on 1/1 node(s)" in r.err, r.err
    assert r.err.index("macvtap-cni is registered with the kubelet") < r.err.index("daemonset.apps/macvtapctl-agent "
                                                                                   "deleted")
    flow.check("through the give-back", at_least=10)
    wait_for("only macvtap-cni serves", lambda: _serving(c) == [("macvtap-cni", UP_NS)], timeout=60)
    with c.kube() as k:
        restored = k.get(DAEMONSET, "macvtap-cni", UP_NS)
        assert k.get_or_none(CONFIGMAP, "macvtapctl-takeover", UP_NS) is None
    assert restored["spec"]["template"]["spec"]["containers"][0]["image"] == UPSTREAM_IMAGE
    wait_for("the agent's pod is gone", lambda: not _agent_pods(c), timeout=60)
    assert _cm_version(c) == cm_version
    assert not _shim_is_ours(c)  # upstream's binary: the agent's uninstall mode left it
    wait_for("macvtap-cni advertises", lambda: c.capacity() == CAPACITY, timeout=60)
    _frames_pass(c, "under-agent", _pod_mac(2))
    c.make_pod("upstream-again", networks=[{"name": NETWORK, "mac": _pod_mac(3)}])
    c.wait_running("upstream-again")
    _frames_pass(c, "upstream-again", _pod_mac(3))
    assert "two-device-plugins" not in _doctor_ids(c)
    c.delete_pods("under-agent", "upstream-again")
    wait_for("allocatable back", lambda: c.capacity(field="allocatable") == CAPACITY, timeout=60)
    no_mvt_links()
