"""doctor's rule 13 on plain dicts: what a pod or VMI on macvtap that does not start says, the cause it maps to and
the fix. The messages are the runtimes' own wording (the kubelet's scheduler, containerd's libcni, this agent's
CNI, libvirt through virt-launcher); the real-node suite builds the same states with KubeVirt and runs the fixes."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from macvtapctl.rules import doctor, failures
from macvtapctl.rules.doctor import workloads
from tests.unit.rules.doctor.helpers import findings_of

PREFIX = "macvtap.network.kubevirt.io"


def nad(name: str = "dataplane", *, manager: str = "macvtapctl", **conf: Any) -> dict[str, Any]:
    return {"kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": f"{PREFIX}/{name}"},
                         "managedFields": [{"manager": manager, "time": "2026-12-01T00:00:00Z"}]},
            "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": name, "type": "macvtap", **conf})}}


def launcher(phase: str = "Pending", *, node: str | None = None, vm: str = "web") -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"name": f"virt-launcher-{vm}-abcde", "namespace": "default", "uid": f"uid-{vm}",
                     "labels": {"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": vm},
                     "annotations": {"k8s.v1.cni.cncf.io/networks": json.dumps(
                         [{"name": "dataplane", "namespace": "default", "interface": "podabc"}])}},
        "spec": {"containers": [{"name": "compute", "resources": {"limits": {f"{PREFIX}/dataplane": "1"}}}]},
        "status": {"phase": phase}}
    if node:
        pod["spec"]["nodeName"] = node
    return pod


def event(obj: dict[str, Any], reason: str, message: str, kind: str = "Pod") -> dict[str, Any]:
    md = obj["metadata"]
    return {"type": "Warning", "reason": reason, "message": message, "lastTimestamp": "2026-12-03T10:00:00Z",
            "involvedObject": {"kind": kind, "namespace": md["namespace"], "name": md["name"], "uid": md["uid"]}}


def node(name: str, allocatable: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": {f"{PREFIX}/dataplane": str(allocatable)},
                                                   "conditions": [{"type": "Ready", "status": "True"}]}}


def configmap(capacity: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "macvtap-deviceplugin-config", "namespace": "macvtap"},
            "data": {"DP_MACVTAP_CONF": json.dumps([{"name": "dataplane", "lowerDevice": "eth1",
                                                     "capacity": capacity}])}}


def agent_ds(image: str = "registry.local/macvtapctl/agent:dev") -> dict[str, Any]:
    return {"metadata": {"name": "macvtapctl-agent", "namespace": "macvtap"},
            "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": image}]}}}}


def findings(s: doctor.Snapshot) -> list[doctor.Finding]:
    return findings_of(workloads.failing_workloads, s)


@pytest.mark.parametrize(("message", "kind", "detail"), [
    ("0/1 nodes are available: 1 Insufficient macvtap.network.kubevirt.io/dataplane. preemption: 0/1 nodes are "
     "available: 1 No preemption victims found for incoming pod.", failures.INSUFFICIENT, "dataplane"),
    ('plugin type="multus" name="multus-cni-network" failed (add): [default/virt-launcher-web-abcde/abc:dataplane]: '
     'error adding container to network "dataplane": failed to find plugin "macvtap" in path [/usr/libexec/cni]',
     failures.CNI_NOT_FOUND, "/usr/libexec/cni"),
    ("error adding container to network \"dataplane\": mtu 9000 is larger than the MTU 1500 of lower device eth1",
     failures.MTU, ""),
    ("failed to set mtu 9000 on macvtap: invalid argument", failures.MTU, ""),
    ("server error. command SyncVMI failed: \"LibvirtError(Code=38, Domain=0, Message='cannot open macvtap tap "
     "device /dev/tap46: Permission denied')\"", failures.TAP_DENIED, "/dev/tap46"),
    ("Unable to create tap device net1: Invalid argument", failures.TAP_INVALID, ""),
    ("MAC 02:00:00:00:00:01 is already used by another macvtap on the same lower device", failures.MAC_IN_USE, ""),
    ("failed to render launch manifest: couldn't find configuration for network binding: macvtap", failures.BINDING,
     ""),
    ('plugin type="macvtap" failed (add): deviceID is required', failures.NO_DEVICE, ""),
    ('error adding container to network "dataplane": failed to lookup device "": Link not found',
     failures.NO_DEVICE, ""),
    ("something nobody has seen before", failures.UNKNOWN, ""),
])
def test_each_known_message_maps_to_its_cause(message: str, kind: str, detail: str) -> None:
    assert failures.classify(message) == failures.Failure(kind, detail)


def test_insufficient_names_the_missing_exposure_and_its_fix() -> None:
    pod = launcher()
    s = doctor.Snapshot(nads=[nad()], nodes=[node("n1", 0)], waiting=[pod], events=[event(
        pod, "FailedScheduling", "0/1 nodes are available: 1 Insufficient macvtap.network.kubevirt.io/dataplane.")])
    [f] = findings(s)
    assert (f.id, f.severity, f.object) == ("workload-insufficient", "error", "pod/default/virt-launcher-web-abcde")
    assert "not exposed" in f.cause and f.fix == "macvtapctl expose LOWER_DEVICE --name dataplane"
    assert "virtualmachineinstance/default/web" in f.refs  # `doctor web` keeps it


def test_insufficient_names_the_pods_that_hold_every_device() -> None:
    waiting = launcher(vm="third")
    holders = [launcher("Running", node="n1", vm=v) for v in ("one", "two")]
    s = doctor.Snapshot(nads=[nad()], nodes=[node("n1", 2)], configmaps=[configmap(capacity=2)], live=holders,
                        waiting=[waiting], events=[event(waiting, "FailedScheduling", "0/1 nodes are available: 1 "
                                                        "Insufficient macvtap.network.kubevirt.io/dataplane.")])
    [f] = findings(s)
    assert "all 2 in use by default/virt-launcher-one-abcde, default/virt-launcher-two-abcde" in f.cause, f.cause
    assert f.fix == "macvtapctl expose eth1 --name dataplane --capacity 4"


def test_insufficient_judges_the_nodes_a_pinned_workload_may_run_on() -> None:
    """`vm create --node b` on a resource only node a has: the cause names b (where it may run) and that a has it,
    not "no schedulable node advertises it"."""
    pinned = launcher(vm="pinned")
    # As KubeVirt writes it: the VM's own selector and KubeVirt's, which every node meets.
    pinned["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "b", "kubevirt.io/schedulable": "true"}
    a, b = node("a", 2), node("b", 0)
    a["metadata"]["labels"] = {"kubernetes.io/hostname": "a", "kubevirt.io/schedulable": "true"}
    b["metadata"]["labels"] = {"kubernetes.io/hostname": "b", "kubevirt.io/schedulable": "true"}
    s = doctor.Snapshot(nads=[nad()], nodes=[a, b], configmaps=[configmap()], waiting=[pinned], events=[event(
        pinned, "FailedScheduling", "0/2 nodes are available: 1 Insufficient macvtap.network.kubevirt.io/dataplane, "
        "1 node(s) didn't match Pod's node affinity/selector.")])
    [f] = findings(s)
    assert f.id == "workload-insufficient", f
    assert "no node it may run on advertises it (b: is eth1 on them" in f.cause, f.cause
    assert f.cause.endswith("a advertises it, but its nodeSelector kubernetes.io/hostname=b rules it out"), f.cause
    # Unpinned, the same cluster has a node for it: the cause is not the selector.
    free = launcher(vm="free")
    s2 = doctor.Snapshot(nads=[nad()], nodes=[a, node("b", 0)], configmaps=[configmap()], waiting=[free],
                         events=[event(free, "FailedScheduling", "0/2 nodes are available: 1 Insufficient "
                                                                 "macvtap.network.kubevirt.io/dataplane.")])
    [g] = findings(s2)
    assert "nodeSelector" not in g.cause, g.cause


def test_cni_not_in_the_runtimes_path_gives_install_with_that_dir_and_the_running_image() -> None:
    pod = launcher()
    s = doctor.Snapshot(nads=[nad()], agents=[agent_ds()], waiting=[pod], events=[event(
        pod, "FailedCreatePodSandBox", 'failed to find plugin "macvtap" in path [/usr/libexec/cni /opt/cni/bin]')])
    [f] = findings(s)
    assert f.id == "workload-cni-not-found" and "/usr/libexec/cni" in f.cause
    assert shlex.split(f.fix or "") == ["macvtapctl", "install", "--cni-bin-dir", "/usr/libexec/cni", "--image",
                                        "registry.local/macvtapctl/agent:dev"]


def test_mtu_refusal_rewrites_the_nad_with_the_lower_devices_mtu_keeping_its_other_settings() -> None:
    pod = launcher()
    s = doctor.Snapshot(nads=[nad(mtu=9000, promiscMode=True, manager="kubectl-client-side-apply")],
                        configmaps=[configmap()], waiting=[pod], reports={"n1": {"lowerDevices": {"eth1": {"mtu": 1500}}}},
                        events=[event(pod, "FailedCreatePodSandBox", "error adding container to network "
                                      "\"dataplane\": mtu 9000 is larger than the MTU 1500 of lower device eth1")])
    [f] = findings(s)
    assert f.id == "workload-mtu"
    # Written by kubectl, so `nad create` takes it over only with --force (it refuses otherwise, exit 5).
    assert f.fix == "macvtapctl nad create dataplane -n default --resource dataplane --mtu 1500 --promisc --force"


def test_tap_denied_on_a_vmi_blames_the_nads_owner_and_group() -> None:
    vmi = {"kind": "VirtualMachineInstance",
           "metadata": {"name": "web", "namespace": "default", "uid": "vmi-uid"},
           "spec": {"networks": [{"name": "dataplane", "multus": {"networkName": "dataplane"}}]},
           "status": {"phase": "Scheduled"}}
    s = doctor.Snapshot(nads=[nad(owner=0, group=0)], vmis=[vmi], events=[event(
        vmi, "SyncFailed", "server error. command SyncVMI failed: \"LibvirtError(Code=38, Domain=0, Message='cannot "
        "open macvtap tap device /dev/tap46: Permission denied')\"", kind="VirtualMachineInstance")])
    [f] = findings(s)
    assert (f.id, f.object) == ("workload-tap-denied", "virtualmachineinstance/default/web")
    assert "/dev/tap46" in f.cause and "sets owner/group" in f.cause
    assert f.fix == "macvtapctl nad create dataplane -n default --resource dataplane && kubectl delete vmi web -n default"


def test_a_launchers_cause_is_said_once_not_again_on_its_vmi_and_unknown_messages_are_kept_verbatim() -> None:
    pod = launcher()
    vmi = {"kind": "VirtualMachineInstance", "metadata": {"name": "web", "namespace": "default", "uid": "vmi-uid"},
           "spec": {"networks": [{"name": "dataplane", "multus": {"networkName": "dataplane"}}]},
           "status": {"phase": "Scheduling", "conditions": [{"type": "PodScheduled", "status": "False",
                                                             "reason": "Unschedulable", "message": "0/1 nodes are "
                                                             "available: 1 Insufficient "
                                                             "macvtap.network.kubevirt.io/dataplane."}]}}
    s = doctor.Snapshot(nads=[nad()], nodes=[node("n1", 0)], vmis=[vmi], waiting=[pod], events=[
        event(pod, "FailedScheduling", "0/1 nodes are available: 1 Insufficient macvtap.network.kubevirt.io/dataplane."),
        event(pod, "FailedMount", "MountVolume.SetUp failed for volume \"x\": something new")])
    found = findings(s)
    assert sorted(f.id for f in found) == ["workload-failing", "workload-insufficient"], found
    unknown = next(f for f in found if f.id == "workload-failing")
    assert unknown.cause == "FailedMount: MountVolume.SetUp failed for volume \"x\": something new"


def test_running_workloads_and_pods_without_macvtap_say_nothing() -> None:
    other = {"metadata": {"name": "web", "namespace": "default", "uid": "u"}, "spec": {"containers": [{"name": "c"}]},
             "status": {"phase": "Pending"}}
    s = doctor.Snapshot(nads=[nad()], waiting=[other], events=[event(other, "FailedScheduling", "0/1 nodes are "
                                                                      "available: 1 Insufficient cpu.")])
    assert findings(s) == []


def test_workload_findings_lead_doctors_errors() -> None:
    pod = launcher()
    s = doctor.Snapshot(nads=[nad()], nodes=[node("n1", 0)], waiting=[pod], events=[event(
        pod, "FailedScheduling", "0/1 nodes are available: 1 Insufficient macvtap.network.kubevirt.io/dataplane.")])
    errors = [f.id for f in doctor.diagnose(s) if f.severity == "error"]
    assert errors[0] == "workload-insufficient" and len(errors) > 1, errors


def test_the_state_a_cause_leaves_is_not_a_finding_and_a_known_cause_leads() -> None:
    """The real runtime's launcher pod with a refused sandbox: besides the CNI's message it carries
    "PodSandboxNotReady: no pod sandbox exists", and its VMI "GuestNotRunning"; those are where it is, not why."""
    pod = launcher()
    pod["status"]["conditions"] = [{"type": "PodReadyToStartContainers", "status": "False",
                                    "reason": "PodSandboxNotReady", "message": "no pod sandbox exists"}]
    vmi = {"kind": "VirtualMachineInstance", "metadata": {"name": "web", "namespace": "default", "uid": "vmi-uid"},
           "spec": {"networks": [{"name": "dataplane", "multus": {"networkName": "dataplane"}}]},
           "status": {"phase": "Scheduling", "conditions": [{"type": "Ready", "status": "False",
                                                             "reason": "GuestNotRunning",
                                                             "message": "Guest VM is not reported as running"}]}}
    s = doctor.Snapshot(nads=[nad(mtu=9000)], vmis=[vmi], waiting=[pod], events=[
        event(pod, "FailedCreatePodSandBox", "error adding container to network \"dataplane\": mtu 9000 is larger "
              "than the MTU 1500 of lower device e2elan0"),
        event(pod, "FailedMount", "something new")])
    assert sorted(f.id for f in findings(s)) == ["workload-failing", "workload-mtu"]
    errors = [f.id for f in doctor.diagnose(s) if f.severity == "error"]
    assert errors[0] == "workload-mtu" and "workload-failing" not in errors, errors


def test_a_skipped_node_check_is_not_a_finding() -> None:
    """The /dev/tapN visibility test is skipped while no lower device is configured: no kind-dev finding (and
    no KinD advice), which a node whose report predates its configuration showed before."""
    report = {"checks": [{"check": "/dev/tapN visible", "status": "skipped", "id": "kind-dev",
                          "detail": "no configured lower device on this node yet"}], "lowerDevices": {}}
    s = doctor.Snapshot(nodes=[node("n1", 1)], reports={"n1": report})
    assert [f for f in doctor.diagnose(s) if f.id == "kind-dev"] == []


def test_a_pod_being_deleted_is_not_failing_to_start() -> None:
    pod = launcher()
    pod["metadata"]["deletionTimestamp"] = "2026-12-03T10:00:00Z"
    s = doctor.Snapshot(nads=[nad()], nodes=[node("n1", 0)], waiting=[pod], events=[event(
        pod, "FailedScheduling", "0/1 nodes are available: 1 Insufficient macvtap.network.kubevirt.io/dataplane.")])
    assert findings(s) == []


def test_an_unclassified_warning_is_a_warning_and_unrelated_ones_are_left_out() -> None:
    """On the real node, a pod stuck on a CNI error also carried the kubelet's MissingClusterDNS warning (no
    cluster DNS: the pod falls back to the Default policy). doctor named the cause and then a second *error* for
    the DNS note. Now: the known cause is the only error; a kubelet DNS note is not a finding; a message nobody
    has classified is reported verbatim as a warning."""
    pod = launcher()
    s = doctor.Snapshot(nads=[nad()], agents=[agent_ds()], waiting=[pod], events=[
        event(pod, "FailedCreatePodSandBox", 'error adding container to network "dataplane": failed to find plugin '
              '"macvtap" in path [/usr/libexec/cni]'),
        event(pod, "MissingClusterDNS", "pod: \"virt-launcher-web-abcde_default(uid-web)\". kubelet does not have "
              "ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to "
              "\"Default\" policy."),
        event(pod, "DNSConfigForming", "Search Line limits were exceeded, some search paths have been omitted"),
        event(pod, "FailedMount", "something new")])
    found = {f.id: f for f in findings(s)}
    assert sorted(found) == ["workload-cni-not-found", "workload-failing"], found
    assert found["workload-cni-not-found"].severity == "error"
    assert found["workload-failing"].severity == "warning"
    assert found["workload-failing"].cause == "FailedMount: something new"
    assert [f.id for f in doctor.diagnose(s) if f.severity == "error"][:1] == ["workload-cni-not-found"]


@pytest.mark.parametrize(("version", "enable_offered"), [("v1.9.0", True), ("v1.10.0", False), (None, True)])
def test_a_pod_without_the_device_request_names_the_missing_injector(version: str | None,
                                                                      enable_offered: bool) -> None:
    """KubeVirt v1.9 leaves the macvtap device request to an injector, v1.10 for good: without one the launcher
    pod requests no device and the CNI refuses (macvtap-cni v0.13+: "deviceID is required"; older: lookup of
    device ""). doctor says so, with the fix for that KubeVirt: `enable` only helps before v1.10."""
    pod = launcher()
    pod["spec"]["containers"][0]["resources"] = {}  # what no injector added
    kubevirts = []
    if version:
        kubevirts = [{"metadata": {"name": "kubevirt", "namespace": "kubevirt"},
                      "status": {"observedKubeVirtVersion": version}}]
    s = doctor.Snapshot(nads=[nad()], kubevirts=kubevirts, waiting=[pod], events=[event(
        pod, "FailedCreatePodSandBox", 'plugin type="multus" failed (add): [default/virt-launcher-web-abcde:dataplane]: '
        'error adding container to network "dataplane": deviceID is required')])
    (f,) = findings(s)
    assert (f.id, f.severity) == ("workload-no-device-request", "error")
    assert f.cause.startswith("no injector added the macvtap device request to this pod")
    assert "network-resources-injector" in (f.fix or "")
    assert ("macvtapctl enable" in (f.fix or "")) is enable_offered
