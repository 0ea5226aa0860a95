"""The drop-in at the VM level, with KubeVirt's own components on the real node: a VM that `macvtapctl vm create
--apply` wrote, started by KubeVirt on upstream macvtap-cni (deployed from its own manifest, image built from
../shared/upstream); `install --take-over` while it runs; the same VM stopped and started again, now on the
agent; `uninstall --restore-upstream` while it runs; and started once more on macvtap-cni. Each time: the guest
leases the LAN's address for the same MAC and the LAN reaches it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from macvtapctl.kube.resources import DAEMONSET
from macvtapctl.rules import device_plugins as plugins
from tests.e2e_kubevirt.vms import (
    create_vm,
    diagnostics,
    lan_ping,
    launcher_pod,
    mac_of,
    set_run_strategy,
    wait_lease,
    wait_stopped,
    wait_vmi_running,
)
from tests.harness.cluster import Cluster, StartFailed, lan_dhcp, running_cluster
from tests.harness.images import AGENT_IMAGE
from tests.harness.upstream_node import UP_NS, deploy_upstream, upstream_image


@pytest.fixture(scope="module")
def kv_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the KubeVirt compat tests need root", pytrace=False)
    try:
        with running_cluster(tmp_path_factory.mktemp("kubevirt-upstream"), kubevirt=True, images=upstream_image,
                             deploy=deploy_upstream) as c, lan_dhcp(c):
            yield c
    except StartFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def _serving(c: Cluster) -> list[str]:
    with c.kube() as k:
        return [p.kind for p, _ in plugins.find(k.list(DAEMONSET))]


def _on_the_lan(c: Cluster, name: str, mac: str) -> dict[str, Any]:
    """The VM's guest leased an address for `mac` and the LAN reaches it."""
    wait_vmi_running(c, name)
    lease = wait_lease(c, launcher_pod(c, name), mac)
    assert lease["server"] == "198.51.100.1", lease
    assert lan_ping(lease["ip"]), f"the LAN got no reply from {lease['ip']}:\n{diagnostics(c, name)}"
    return lease


def _restart(c: Cluster, name: str) -> None:
    set_run_strategy(c, name, "Halted")
    wait_stopped(c, name)
    set_run_strategy(c, name, "Always")


@pytest.mark.timeout(2400)
def test_the_same_vm_runs_on_macvtap_cni_then_on_the_agent_and_back(kv_upstream: Cluster) -> None:
    c = kv_upstream
    assert _serving(c) == [plugins.UPSTREAM]
    vm = create_vm(c, "dropin")
    mac = mac_of(vm)
    lease = _on_the_lan(c, "dropin", mac)  # started by KubeVirt on upstream macvtap-cni

    # No --cni-bin-dir: the take-over puts the shim where macvtap-cni installed its binary.
    r = c.mvc("install", "--take-over", "--image", AGENT_IMAGE, "--timeout", "3m")
    assert f"CNI bin dir {c.node.cni_bin}: where DaemonSet {UP_NS}/macvtap-cni installs its binary" in r.err, r.err
    print(r.err)
    assert _serving(c) == [plugins.AGENT]
    assert lan_ping(lease["ip"]), "the running VM lost its network across the take-over"
    _restart(c, "dropin")
    again = _on_the_lan(c, "dropin", mac)  # the same VM, now on the agent: same MAC, a lease, the LAN reaches it
    assert again["mac"] == mac

    r = c.mvc("uninstall", "--restore-upstream", "--timeout", "3m")
    print(r.err)
    assert _serving(c) == [plugins.UPSTREAM]
    assert lan_ping(again["ip"]), "the running VM lost its network across the give-back"
    _restart(c, "dropin")
    _on_the_lan(c, "dropin", mac)
    with c.kube() as k:
        assert k.get_or_none(DAEMONSET, "macvtap-cni", UP_NS) is not None
