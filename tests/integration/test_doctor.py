"""`doctor` on the local control plane: each cluster-side check builds its broken state, sees the finding, runs the
fix doctor prints (macvtapctl or the real kubectl) and sees the finding go. Where a fix needs a controller or a
kubelet that does not run here, the test writes what that component would (named at the spot)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import time
from typing import Any

import pytest

from macvtapctl.errors import ExitCode, NotFoundError
from macvtapctl.kube.resources import (
    CONFIGMAP,
    CRD,
    DAEMONSET,
    KUBEVIRT,
    NAD,
    NAMESPACE,
    NETWORK_ADDONS_CONFIG,
    NODE,
    POD,
    VIRTUAL_MACHINE,
    VIRTUAL_MACHINE_INSTANCE,
)
from tests.conftest import vm_manifest, vmi_of
from tests.harness.controlplane import binaries

CM = "macvtap-deviceplugin-config"
RES = "macvtap.network.kubevirt.io"


@pytest.fixture(autouse=True)
def clean(control_plane):
    """KubeVirt v1.5 with the binding; no ConfigMap, NAD, VM, node, agent or upstream DaemonSet."""
    reset(control_plane)
    yield
    wipe(control_plane)


def reset(cp) -> None:
    cp.reset_kubevirt("v1.5.0", spec={"configuration": {"network": {"binding": {
        "macvtap": {"domainAttachmentType": "tap"}}}}})
    wipe(cp)


def wipe(cp) -> None:
    with cp.kube() as k:
        if k.get_or_none(NAMESPACE, "macvtap") is not None:  # as other tests expect it: no install labels
            k.merge_patch(NAMESPACE, "macvtap", {"metadata": {"labels": None}})
        for cm in k.list(CONFIGMAP, field_selector=f"metadata.name={CM}") + \
                k.list(CONFIGMAP, field_selector="metadata.name=my-macvtap"):
            k.delete(CONFIGMAP, cm["metadata"]["name"], cm["metadata"]["namespace"])
        for res in (NAD, VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE):
            for o in k.list(res):
                k.delete(res, o["metadata"]["name"], o["metadata"]["namespace"])
        for ns in ("macvtap",):
            for res in (DAEMONSET, POD):
                for o in k.list(res, ns):
                    k.delete(res, o["metadata"]["name"], ns, grace_period=0)
        for n in k.list(NODE):
            k.delete(NODE, n["metadata"]["name"])
        for nac in k.list(NETWORK_ADDONS_CONFIG):
            k.delete(NETWORK_ADDONS_CONFIG, nac["metadata"]["name"])
        # A CRD the previous test deleted may still be terminating: its DELETE then races the finalizer (404).
        if k.get_or_none(CRD, "clusterversions.config.openshift.io"):
            with contextlib.suppress(NotFoundError):
                k.delete(CRD, "clusterversions.config.openshift.io")
        deadline = time.monotonic() + 30
        while k.get_or_none(CRD, "clusterversions.config.openshift.io") and time.monotonic() < deadline:
            time.sleep(0.1)


def doctor(cli, admin, *args: str) -> tuple[int, list[dict[str, Any]]]:
    r = cli("--kubeconfig", admin, "doctor", *args, "-o", "json")
    assert r.exit_code in (0, ExitCode.FINDINGS), r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "DoctorReport"
    assert (r.exit_code == ExitCode.FINDINGS) == (doc["summary"]["error"] > 0)
    return r.exit_code, doc["findings"]


def with_id(findings: list[dict[str, Any]], fid: str, obj: str | None = None) -> list[dict[str, Any]]:
    return [f for f in findings if f["id"] == fid and (obj is None or f["object"] == obj)]


def run_fix(cli, admin: str, fix: str) -> None:
    """Run the fix doctor printed, as a user would."""
    argv = shlex.split(fix)
    if argv[0] == "macvtapctl":
        r = cli("--kubeconfig", admin, *argv[1:])
        assert r.exit_code == 0, (fix, r.stderr)
    else:
        assert argv[0] == "kubectl", fix
        subprocess.run([str(binaries() / "kubectl"), *argv[1:]], check=True, capture_output=True,
                       env={**os.environ, "KUBECONFIG": admin})


def seed_config(cp, text: str, ns: str = "macvtap", **meta: Any) -> None:
    with cp.kube() as k:
        if k.get_or_none(NAMESPACE, ns) is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": ns,
                                                                                   **meta},
                             "data": {"DP_MACVTAP_CONF": text}}, ns)


def node(cp, name: str, resources: dict[str, str]) -> None:
    """A Node and the resources its kubelet reports (no kubelet runs here: the test writes its status)."""
    with cp.kube() as k:
        k.create(NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        k.merge_patch(NODE, name, {"status": {"capacity": resources, "allocatable": resources}},
                      subresource="status")


def upstream_ds(cp, image: str) -> None:
    """kubevirt/macvtap-cni's DaemonSet as its manifest deploys it: DP_MACVTAP_CONF from the ConfigMap."""
    with cp.kube() as k:
        if k.get_or_none(NAMESPACE, "macvtap") is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "macvtap"}})
        k.create(DAEMONSET, {
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "macvtap-cni", "namespace": "macvtap"},
            "spec": {"selector": {"matchLabels": {"name": "macvtap-cni"}}, "template": {
                "metadata": {"labels": {"name": "macvtap-cni"}},
                "spec": {"containers": [{"name": "macvtap-cni", "image": image, "env": [{
                    "name": "DP_MACVTAP_CONF", "valueFrom": {"configMapKeyRef": {"name": CM,
                                                                                 "key": "DP_MACVTAP_CONF"}}}]}]}}}},
            "macvtap")


def test_resource_capacity(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "other", "lowerDevice": "eth1"}]')
    assert cli("--kubeconfig", admin, "nad", "create", "dp", "--resource", "dataplane").exit_code == 0
    node(control_plane, "n1", {f"{RES}/other": "100"})
    code, found = doctor(cli, admin)
    [f] = with_id(found, "resource-capacity")
    assert code == ExitCode.FINDINGS and f["severity"] == "error"
    assert f["object"] == "networkattachmentdefinition/default/dp" and "not exposed" in f["cause"]
    run_fix(cli, admin, f["fix"].replace("LOWER_DEVICE", "eth0"))
    node(control_plane, "n2", {f"{RES}/dataplane": "100"})  # the agent advertises it on n2 (kubelet's write)
    _, found = doctor(cli, admin)
    [f] = with_id(found, "resource-capacity")
    assert f["severity"] == "warning" and "node(s) n1" in f["cause"]  # n1 still has none
    with control_plane.kube() as k:
        k.merge_patch(NODE, "n1", {"status": {"allocatable": {f"{RES}/dataplane": "100"}}}, subresource="status")
    assert with_id(doctor(cli, admin)[1], "resource-capacity") == []


def test_dp_config_upstream_reading(cli, admin, control_plane) -> None:
    guide = '[\n  {"name": "dataplane", "lowerDevice": "eth0", "mode": "bridge", "capacity": 50},\n]'
    seed_config(control_plane, guide)
    _, found = doctor(cli, admin)
    [f] = with_id(found, "dp-config")
    assert f["severity"] == "warning" and "trailing comma" in f["cause"]  # our agent reads it
    upstream_ds(control_plane, "quay.io/kubevirt/macvtap-cni:v0.13.1")
    _, found = doctor(cli, admin)
    [f] = with_id(found, "dp-config")
    assert f["severity"] == "error"  # macvtap-cni exits on it
    run_fix(cli, admin, f["fix"].replace("LOWER_DEVICE", "eth0").replace("NAME", "dataplane"))
    assert with_id(doctor(cli, admin)[1], "dp-config") == []


def test_dp_config_refused_entries_and_long_names(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dp", "master": "eth0"}, {"name": "averylongname", "lowerDevice": "eth1"}]')
    upstream_ds(control_plane, "quay.io/kubevirt/macvtap-cni:v0.13.1")
    _, found = doctor(cli, admin)
    causes = [f["cause"] for f in with_id(found, "dp-config")]
    assert any("write 'lowerDevice'" in c for c in causes)
    assert any("'averylongname' is longer than 10" in c for c in causes)
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dp").exit_code == 0
    assert cli("--kubeconfig", admin, "unexpose", "averylongname").exit_code == 0
    assert with_id(doctor(cli, admin)[1], "dp-config") == []


def test_dp_config_owned_by_cnao(cli, admin, control_plane) -> None:
    owner = {"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1", "kind": "NetworkAddonsConfig",
             "name": "cluster", "uid": "4b6a3b0c-0000-4000-8000-000000000001"}
    seed_config(control_plane, "[]", ns="cnao", ownerReferences=[owner])
    with control_plane.kube() as k:
        k.create(NETWORK_ADDONS_CONFIG, {"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1",
                                         "kind": "NetworkAddonsConfig", "metadata": {"name": "cluster"},
                                         "spec": {"macvtap": {}}})
    [f] = with_id(doctor(cli, admin)[1], "dp-config-owned")
    assert f["object"] == f"configmap/cnao/{CM}"
    run_fix(cli, admin, f["fix"].split(" (then")[0])
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0  # writes my-macvtap
    assert with_id(doctor(cli, admin)[1], "dp-config-owned") == []


def test_dp_config_stale_upstream_pods(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dataplane", "lowerDevice": "eth0"}]')
    upstream_ds(control_plane, "quay.io/kubevirt/macvtap-cni:v0.13.1")
    with control_plane.kube() as k:
        ds = k.get(DAEMONSET, "macvtap-cni", "macvtap")
        # The pod the DaemonSet controller made, started before the ConfigMap's last write (no controller here).
        k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "macvtap-cni-a", "namespace": "macvtap", "labels": {"name": "macvtap-cni"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "macvtap-cni",
                                 "uid": ds["metadata"]["uid"]}]},
            "spec": {"containers": [{"name": "c", "image": "quay.io/kubevirt/macvtap-cni:v0.13.1"}]}}, "macvtap")
        k.merge_patch(POD, "macvtap-cni-a", {"status": {"startTime": "2020-01-01T00:00:00Z"}}, "macvtap",
                      subresource="status")
    [f] = with_id(doctor(cli, admin)[1], "dp-config-stale")
    assert f["fix"] == "kubectl -n macvtap rollout restart daemonset/macvtap-cni"
    run_fix(cli, admin, f["fix"])
    with control_plane.kube() as k:
        # The fix's own write: a new pod template (no controller runs here to replace the pod, so the test does
        # what the DaemonSet controller does with that template: a new pod, started now).
        template = k.get(DAEMONSET, "macvtap-cni", "macvtap")["spec"]["template"]["metadata"]
        assert "kubectl.kubernetes.io/restartedAt" in (template.get("annotations") or {}), template
        k.delete(POD, "macvtap-cni-a", "macvtap", grace_period=0)
    assert with_id(doctor(cli, admin)[1], "dp-config-stale") == []


def test_version_pairs_and_gates(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dataplane", "lowerDevice": "eth0"}]')
    upstream_ds(control_plane, "quay.io/kubevirt/macvtap-cni:v0.9.0")
    causes = [f["cause"] for f in with_id(doctor(cli, admin)[1], "version-pair")]
    assert any("before v0.10.0 crashes on Kubernetes >= 1.25" in c for c in causes)
    assert any("before v0.13.1" in c and "Permission denied" in c for c in causes)
    subprocess.run([str(binaries() / "kubectl"), "-n", "macvtap", "set", "image", "daemonset/macvtap-cni",
                    "macvtap-cni=quay.io/kubevirt/macvtap-cni:v0.13.1"], check=True, capture_output=True,
                   env={**os.environ, "KUBECONFIG": admin})
    assert with_id(doctor(cli, admin)[1], "version-pair") == []
    control_plane.reset_kubevirt("v1.4.0")
    [f] = with_id(doctor(cli, admin)[1], "binding-gate")
    run_fix(cli, admin, f["fix"])
    assert with_id(doctor(cli, admin)[1], "binding-gate") == []
    control_plane.reset_kubevirt("v1.9.0")
    # No injector here: the dry-run pod proves it missing when a macvtap NAD exists, unproven otherwise.
    ids = ("external-injection", "injection-missing")
    [f] = [f for i in ids for f in with_id(doctor(cli, admin)[1], i)]
    run_fix(cli, admin, f["fix"])
    assert [f for i in ids for f in with_id(doctor(cli, admin)[1], i)] == []


def test_vm_spec_findings_and_narrowing(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane").exit_code == 0
    other = vm_manifest("other", "--network", "dataplane", "--binding-name", "mvt2", "--mac", "auto")
    good = vm_manifest("good", "--network", "dataplane", "--mac", "auto")
    with control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE, other, "default")  # KubeVirt admits it; virt-controller would not start it
        k.create(VIRTUAL_MACHINE, good, "default")
    code, found = doctor(cli, admin)
    [f] = with_id(found, "vm-binding-not-registered")
    assert code == ExitCode.FINDINGS and f["object"] == "virtualmachine/default/other"
    _, narrowed = doctor(cli, admin, "good")
    assert with_id(narrowed, "vm-binding-not-registered") == []  # another VM's problem
    assert with_id(doctor(cli, admin, "other")[1], "vm-binding-not-registered")
    run_fix(cli, admin, f["fix"])
    assert with_id(doctor(cli, admin)[1], "vm-binding-not-registered") == []
    r = cli("--kubeconfig", admin, "doctor", "nope")
    assert r.exit_code == ExitCode.PRECONDITION and '"nope" not found' in r.stderr


def test_nad_content(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dataplane", "lowerDevice": "eth0"}]')
    with control_plane.kube() as k:
        k.create(NAD, {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                       "metadata": {"name": "dp", "namespace": "default",
                                    "annotations": {"k8s.v1.cni.cncf.io/resourceName": f"{RES}/dataplane"}},
                       "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": "macvtap", "name": "dp",
                                                      "lowerDevice": "eth0", "mac": "02:00:00:00:00:01"})}},
                 "default")
    _, found = doctor(cli, admin)
    [f] = with_id(found, "nad-ignored-keys")
    assert "lowerDevice, mac" in f["cause"]
    [p] = with_id(found, "promisc")
    assert p["fix"] == "macvtapctl nad create dp -n default --resource dataplane --promisc"
    run_fix(cli, admin, p["fix"])  # rewrites the config: promiscMode on, the ignored keys gone
    _, found = doctor(cli, admin)
    assert with_id(found, "nad-ignored-keys") == [] and with_id(found, "promisc") == []


def test_agent_health_image_and_openshift(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane").exit_code == 0
    [f] = with_id(doctor(cli, admin)[1], "agent-health")
    assert "no macvtap agent" in f["cause"]
    run_fix(cli, admin, f["fix"].replace("IMAGE", "registry.example/macvtapctl/agent:v1"))
    _, found = doctor(cli, admin)
    [f] = with_id(found, "agent-health")
    assert f["cause"] == "0/0 pods ready"  # no DaemonSet controller runs here
    node(control_plane, "n1", {f"{RES}/dataplane": "100"})
    with control_plane.kube() as k:
        ds = k.get(DAEMONSET, "macvtapctl-agent", "macvtap")
        k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "agent-n1", "namespace": "macvtap", "labels": ds["spec"]["selector"]["matchLabels"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "macvtapctl-agent",
                                 "uid": ds["metadata"]["uid"]}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "agent", "image": "registry.example/x:v1"}]}},
            "macvtap")
        k.merge_patch(POD, "agent-n1", {"status": {"phase": "Pending", "containerStatuses": [{
            "name": "agent", "image": "registry.example/x:v1", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}, "macvtap", subresource="status")
    _, found = doctor(cli, admin)
    [img] = with_id(found, "agent-image")
    assert "ImagePullBackOff" in img["cause"] and "registry.example/x:v1" in img["cause"]
    [nr] = with_id(found, "node-no-report")
    assert nr["object"] == "node/n1" and "Pending" in nr["cause"]
    with control_plane.kube() as k:
        k.create(CRD, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                       "metadata": {"name": "clusterversions.config.openshift.io"},
                       "spec": {"group": "config.openshift.io", "scope": "Cluster",
                                "names": {"plural": "clusterversions", "kind": "ClusterVersion"},
                                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields":
                                                        True}}}]}})
    assert with_id(doctor(cli, admin)[1], "openshift")


def test_stale_resource(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dataplane", "lowerDevice": "eth0"}]')
    node(control_plane, "n1", {f"{RES}/dataplane": "100", f"{RES}/renamed": "0", "cpu": "2"})
    [f] = with_id(doctor(cli, admin)[1], "stale-resource")
    assert f["object"] == "node/n1" and "'renamed'" in f["cause"]
    run_fix(cli, admin, f["fix"])
    assert with_id(doctor(cli, admin)[1], "stale-resource") == []
    with control_plane.kube() as k:
        assert k.get(NODE, "n1")["status"]["capacity"]["cpu"] == "2"  # nothing else touched


def vmi_status(cp, k, mac: str) -> None:
    sub = "status" if cp.has_status_subresource("virtualmachineinstances.kubevirt.io") else None
    k.merge_patch(VIRTUAL_MACHINE_INSTANCE, "web", {"status": {"interfaces": [{"name": "dataplane", "mac": mac}]}},
                  "default", subresource=sub)


def test_mac_mismatch_and_l2_mode(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dataplane", "lowerDevice": "eth0", "mode": "vepa"}]')
    assert cli("--kubeconfig", admin, "nad", "create", "dataplane", "--resource", "dataplane").exit_code == 0
    vm = vm_manifest("web", "--network", "dataplane", "--mac", "dataplane=02:00:00:00:00:aa")
    with control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE_INSTANCE, vmi_of(vm), "default")
        # virt-handler's report of the guest (no virt-handler here): another MAC than the spec asked for.
        vmi_status(control_plane, k, "02:00:00:00:00:bb")
    _, found = doctor(cli, admin)
    [f] = with_id(found, "mac-mismatch")
    assert "02:00:00:00:00:bb" in f["cause"] and "02:00:00:00:00:aa" in f["cause"]
    [m] = with_id(found, "l2-mode")
    assert m["severity"] == "info" and "hairpin" in m["cause"]
    with control_plane.kube() as k:  # after a restart the guest uses the spec's MAC again
        vmi_status(control_plane, k, "02:00:00:00:00:aa")
    assert with_id(doctor(cli, admin)[1], "mac-mismatch") == []


def test_doctor_is_read_only_and_idempotent(cli, admin, control_plane) -> None:
    seed_config(control_plane, '[{"name": "dataplane", "lowerDevice": "eth0"},]')
    with control_plane.kube() as k:
        before = k.get(KUBEVIRT, "kubevirt", "kubevirt")["metadata"]["resourceVersion"], \
            k.get(CONFIGMAP, CM, "macvtap")["metadata"]["resourceVersion"]
    first = doctor(cli, admin)
    assert doctor(cli, admin) == first
    with control_plane.kube() as k:
        assert (k.get(KUBEVIRT, "kubevirt", "kubevirt")["metadata"]["resourceVersion"],
                k.get(CONFIGMAP, CM, "macvtap")["metadata"]["resourceVersion"]) == before


def test_unprivileged_user_is_told_what_is_missing(cli, unprivileged, control_plane) -> None:
    r = cli("--kubeconfig", unprivileged, "doctor")
    assert r.exit_code == ExitCode.FORBIDDEN and r.stderr.count("\n") == 1
