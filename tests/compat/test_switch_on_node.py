"""A live switch on the real node (kubelet, containerd, runc, Multus): upstream macvtap-cni deployed from its own
manifest (templates/macvtap.yaml.in in ../shared/upstream, image built here from that source) serves a pod;
`install --take-over` switches the node to the agent and `uninstall --restore-upstream` gives it back. Across
both: the user's ConfigMap is not written, the running pod keeps its interface and its frames pass, a new pod
runs, and the DEL of a pod the other plugin attached leaves nothing."""

from __future__ import annotations

import json
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

    # No --cni-bin-dir: the take-over puts the shim where macvtap-cni installed its binary.
    r = c.mvc("install", "--take-over", "--image", AGENT_IMAGE, "--timeout", "3m")
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

    r = c.mvc("uninstall", "--restore-upstream", "--timeout", "3m")
    print(r.err)
    assert "daemonset.apps/macvtap-cni created" in r.err and "daemonset.apps/macvtapctl-agent deleted" in r.err
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
