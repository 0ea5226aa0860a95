"""`install --injector` on the real nodes (issue 40): network-resources-injector v1.9.0, built unmodified from the Go
module proxy into an image (tests/harness/images.py; the default image is ghcr.io's, and no registry is reachable
here), deployed by the command as users run it — its Deployment on the kubelets, its webhook called by the API server
through its Service. A pod that only names the macvtap network comes back with the device request and gets net1
through the agent; a pod that names no network is left alone; a KubeVirt VM still starts with the request once
(the runtime here is v1.7.0, which adds the request itself: NRI must not add a second).

Runs late in the package (test_y): while the webhook is there it mutates every pod that names a network, and it
is removed at the end, the webhook configuration first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from macvtapctl.manifests import injector as nri
from tests.e2e_kubevirt.vms import create_vm, launcher_pod, wait_stopped, wait_vmi_running
from tests.harness.cluster import AGENT_NS, NETWORK, POD_NS, RESOURCE, Cluster, wait_for
from tests.harness.images import AGENT_IMAGE, INJECTOR_IMAGE


def requested(container: dict[str, Any]) -> dict[str, str]:
    """The container's macvtap requests and limits, by where they are."""
    res = container.get("resources") or {}
    return {kind: str(res[kind][RESOURCE]) for kind in ("requests", "limits") if RESOURCE in (res.get(kind) or {})}


def remove_injector(c: Cluster) -> None:
    # The webhook configuration first: with failurePolicy Fail, a webhook whose server is gone refuses pods.
    c.kubectl("delete", "mutatingwebhookconfiguration", nri.NAME, "--ignore-not-found")
    c.kubectl("delete", "-n", AGENT_NS, "deployment,service,poddisruptionbudget,secret,rolebinding,role,serviceaccount",
              "-l", f"app.kubernetes.io/name={nri.NAME}", "--ignore-not-found", "--wait=true", timeout=120)
    c.kubectl("delete", "clusterrolebinding,clusterrole", "-l", f"app.kubernetes.io/name={nri.NAME}",
              "--ignore-not-found")


@pytest.mark.timeout(900)
def test_y_install_injector_on_the_nodes_adds_the_device_request_once(kv_cluster: Cluster) -> None:
    c = kv_cluster
    done = c.mvc("install", "--image", AGENT_IMAGE, "--cni-bin-dir", str(c.node.cni_bin), "--injector",
                 "--injector-image", INJECTOR_IMAGE, "--wait", "--timeout", "3m")
    try:
        # install --wait returns once both replicas are available (as kubectl rollout status) and a server-side dry
        # run of a pod naming the network came back with the request.
        assert f"deployment.apps/{nri.NAME} rolled out" in done.err and "injection verified" in done.err, done.err
        assert f"deployment.apps/{nri.NAME} created" in done.err, done.err
        deployment = json.loads(c.kubectl("get", "deployment", "-n", AGENT_NS, nri.NAME, "-o", "json").out)
        assert deployment["status"].get("readyReplicas") == nri.REPLICAS, deployment["status"]
        again = c.mvc("install", "--image", AGENT_IMAGE, "--cni-bin-dir", str(c.node.cni_bin), "--injector",
                      "--injector-image", INJECTOR_IMAGE)
        assert f"deployment.apps/{nri.NAME} unchanged" in again.err, again.err

        # A pod naming only the network (no resources of its own): NRI adds the request, the kubelet allocates a
        # device, the agent's CNI ADD gives it net1.
        c.make_pod("nri-plain", networks=[{"name": NETWORK}], units=0)
        c.make_pod("nri-unrelated", networks=None, units=0)
        pod = c.wait_running("nri-plain")
        assert requested(pod["spec"]["containers"][0]) == {"requests": "1", "limits": "1"}, pod["spec"]
        net1 = c.interface("nri-plain")
        assert net1.get("mac") and net1.get("taps", "").startswith("tap"), net1
        unrelated = c.wait_running("nri-unrelated")
        assert requested(unrelated["spec"]["containers"][0]) == {}, unrelated["spec"]["containers"][0]

        # A VM: KubeVirt v1.7.0 puts the request on its launcher pod itself; NRI finds it there and adds none.
        create_vm(c, "nri-vm")
        wait_vmi_running(c, "nri-vm")
        compute = next(k for k in launcher_pod(c, "nri-vm")["spec"]["containers"] if k["name"] == "compute")
        assert requested(compute) == {"requests": "1", "limits": "1"}, compute.get("resources")
    finally:
        c.kubectl("delete", "vm", "-n", POD_NS, "nri-vm", "--ignore-not-found", "--wait=true", timeout=180)
        wait_stopped(c, "nri-vm")
        c.delete_pods("nri-plain", "nri-unrelated")
        remove_injector(c)
    wait_for("the injector's pods gone", lambda: not json.loads(c.kubectl(
        "get", "pods", "-n", AGENT_NS, "-l", f"app.kubernetes.io/name={nri.NAME}", "-o", "json").out)["items"],
        timeout=120)
