"""Every finding id docs/doctor.md documents is produced by a unit test on plain dicts: the smallest Snapshot that
makes doctor say it, with its severity, object and cause, and the same Snapshot without the triggering fact saying
nothing of it. The last test keeps it so: a documented id no unit test names fails it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.rules import doctor, dpconfig, injector
from macvtapctl.rules.doctor import cluster, nodes, vms, workloads
from tests.unit.rules.doctor.helpers import findings_of

REPO = Path(__file__).resolve().parents[4]
PREFIX = "macvtap.network.kubevirt.io"
CM_REF = f"configmap/macvtap/{dpconfig.CONFIGMAP_NAME}"
NAD_REF = "networkattachmentdefinition/default/dataplane"



# --- plain dicts, as doctor reads them ----------------------------------------------------------------------------

def nad(name: str = "dataplane", **conf: Any) -> dict[str, Any]:
    return {"kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": f"{PREFIX}/{name}"},
                         "managedFields": [{"manager": "macvtapctl", "time": "2026-12-01T00:00:00Z"}]},
            "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": name, "type": "macvtap", **conf})}}


def configmap(*entries: dict[str, Any], written: str = "2026-11-28T12:00:00Z",
              owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": dpconfig.CONFIGMAP_NAME, "namespace": "macvtap",
                          "managedFields": [{"manager": "macvtapctl", "time": written}]}
    if owners:
        md["ownerReferences"] = owners
    return {"metadata": md, "data": {dpconfig.CONFIG_KEY: json.dumps(list(entries))}}


DATAPLANE = {"name": "dataplane", "lowerDevice": "eth1"}


def report(*checks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A node agent's GET /doctor answer (agent/check.py node_report)."""
    return {"checks": list(checks), **extra}


def check(check_id: str, name: str, status: str, detail: str) -> dict[str, Any]:
    return {"id": check_id, "check": name, "status": status, "detail": detail}


def agent_ds() -> dict[str, Any]:
    return {"metadata": {"name": "macvtapctl-agent", "namespace": "macvtap",
                         "labels": {"app.kubernetes.io/name": "macvtapctl-agent"}},
            "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "registry.example/x:v1"}]}}}}


def upstream_ds(image: str = "quay.io/kubevirt/macvtap-cni:v0.14.0") -> dict[str, Any]:
    return {"metadata": {"name": "macvtap-cni", "namespace": "macvtap"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "macvtap-cni", "image": image, "command": ["/macvtap-deviceplugin"]}]}}}}


def agent_pod(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "agent-n1", "namespace": "macvtap",
                         "ownerReferences": [{"kind": "DaemonSet", "name": "macvtapctl-agent"}]},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Pending", "containerStatuses": [status]}}


def launcher(vm: str | None = "web") -> dict[str, Any]:
    """A virt-launcher pod (or, without `vm`, a plain pod) on the dataplane NAD that is not running."""
    labels = {"vm.kubevirt.io/name": vm} if vm else {}
    return {"metadata": {"name": f"virt-launcher-{vm}-abcde" if vm else "plain", "namespace": "default",
                         "uid": f"uid-{vm}", "labels": labels,
                         "annotations": {"k8s.v1.cni.cncf.io/networks": json.dumps(
                             [{"name": "dataplane", "namespace": "default"}])}},
            "spec": {"containers": [{"name": "compute", "resources": {"limits": {f"{PREFIX}/dataplane": "1"}}}]},
            "status": {"phase": "Pending"}}


def vmi(phase: str = "Scheduled", *, spec_mac: str | None = None, status_mac: str | None = None) -> dict[str, Any]:
    iface: dict[str, Any] = {"name": "dataplane", "binding": {"name": "macvtap"}}
    if spec_mac:
        iface["macAddress"] = spec_mac
    status: dict[str, Any] = {"phase": phase}
    if status_mac:
        status["interfaces"] = [{"name": "dataplane", "mac": status_mac}]
    return {"kind": "VirtualMachineInstance", "metadata": {"name": "web", "namespace": "default", "uid": "vmi-uid"},
            "spec": {"domain": {"devices": {"interfaces": [iface]}},
                     "networks": [{"name": "dataplane", "multus": {"networkName": "default/dataplane"}}]},
            "status": status}


def event(obj: dict[str, Any], reason: str, message: str, kind: str = "Pod") -> dict[str, Any]:
    md = obj["metadata"]
    return {"type": "Warning", "reason": reason, "message": message, "lastTimestamp": "2026-12-03T10:00:00Z",
            "involvedObject": {"kind": kind, "namespace": md["namespace"], "name": md["name"], "uid": md["uid"]}}


def kubevirt(status: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {"configuration": {"network": {"binding": {"macvtap": {"domainAttachmentType": "tap"}}}}},
            "status": status}


def emitted(rule: doctor.Check, s: doctor.Snapshot, fid: str) -> list[doctor.Finding]:
    """The findings of one id that a rule gives, each also in diagnose's answer (the rule is one of doctor's)."""
    found = [f for f in findings_of(rule, s) if f.id == fid]
    everything = doctor.diagnose(s)
    assert all(f in everything for f in found), (found, everything)
    return found


# --- 2. the device-plugin ConfigMap ------------------------------------------------------------------------------

def test_dp_config_owned_when_cnao_owns_the_configmap() -> None:
    owned = configmap(DATAPLANE, owners=[{"kind": "NetworkAddonsConfig", "name": "cluster"}])
    [f] = emitted(cluster.dp_config, doctor.Snapshot(configmaps=[owned]), "dp-config-owned")
    assert (f.severity, f.object) == ("warning", CM_REF)
    assert "CNAO owns this ConfigMap" in f.cause and f.fix and '"devicePluginConfig":"my-macvtap"' in f.fix
    assert not emitted(cluster.dp_config, doctor.Snapshot(configmaps=[configmap(DATAPLANE)]), "dp-config-owned")


@pytest.mark.parametrize(("started", "stale"), [("2026-11-28T11:00:00Z", True), ("2026-11-28T13:00:00Z", False)])
def test_dp_config_stale_when_macvtap_cni_started_before_the_configmaps_last_write(started: str, stale: bool) -> None:
    pod = {"metadata": {"name": "macvtap-cni-x", "namespace": "macvtap",
                        "ownerReferences": [{"kind": "DaemonSet", "name": "macvtap-cni"}]},
           "spec": {"nodeName": "n1"}, "status": {"phase": "Running", "startTime": started}}
    s = doctor.Snapshot(configmaps=[configmap(DATAPLANE)], upstream=[upstream_ds()], agent_pods=[pod])
    found = emitted(cluster.dp_config, s, "dp-config-stale")
    if not stale:
        assert found == []
        return
    [f] = found
    assert (f.severity, f.object) == ("warning", "daemonset/macvtap/macvtap-cni")
    assert "1 pod(s) started before the ConfigMap's last change (2026-11-28T12:00:00Z)" in f.cause
    assert f.fix == "kubectl -n macvtap rollout restart daemonset/macvtap-cni"


# --- 3, 7, 9, 11 (node side): what the agents report --------------------------------------------------------------

def test_tap_ownership_from_the_node_report_with_the_fix_that_rewrites_the_owning_nad() -> None:
    bad = check("tap-ownership", "tap ownership", "error",
                "expected 107:107: /dev/tap4242 0:0 (qemu cannot open them: Permission denied)")
    s = doctor.Snapshot(nads=[nad(owner=0, group=0, promiscMode=True)], reports={"n1": report(bad)})
    [f] = emitted(nodes.node_agents, s, "tap-ownership")
    assert (f.severity, f.object) == ("error", "node/n1")
    assert f.cause.startswith("tap ownership: expected 107:107: /dev/tap4242 0:0")
    assert f.fix == "macvtapctl nad create dataplane -n default --resource dataplane --promisc"
    [plain] = emitted(nodes.node_agents, doctor.Snapshot(nads=[nad()], reports={"n1": report(bad)}), "tap-ownership")
    assert plain.fix and plain.fix.startswith("macvtapctl install")  # no NAD sets owner/group: the CNI chowns
    ok = check("tap-ownership", "tap ownership", "ok", "attached tap devices belong to 107:107")
    assert not emitted(nodes.node_agents, doctor.Snapshot(reports={"n1": report(ok)}), "tap-ownership")


def test_leaked_links_from_the_node_report() -> None:
    leaked = check("leaked-links", "leaked links", "warning", "2 temporary macvtap link(s) on the node: mvt1, mvt2")
    [f] = emitted(nodes.node_agents, doctor.Snapshot(reports={"n1": report(leaked)}), "leaked-links")
    assert (f.severity, f.object) == ("warning", "node/n1") and "mvt1, mvt2" in f.cause
    none = check("leaked-links", "leaked links", "ok", "none")
    assert not emitted(nodes.node_agents, doctor.Snapshot(reports={"n1": report(none)}), "leaked-links")


def test_l2_nested_lower_from_the_node_report_unless_it_judged_another_configuration() -> None:
    cm = configmap({"name": "dataplane", "lowerDevice": "br0"})
    nested = check("l2-nested-lower", "lower device br0 kind", "warning", "is itself a bridge link: macvtap on it "
                   "works only as far as its own parent lets frames through")
    current = dpconfig.digest(cm["data"][dpconfig.CONFIG_KEY])
    s = doctor.Snapshot(configmaps=[cm], reports={"n1": report(nested, configDigest=current)})
    [f] = emitted(nodes.node_agents, s, "l2-nested-lower")
    assert (f.severity, f.object) == ("warning", "node/n1") and "is itself a bridge link" in f.cause
    older = doctor.Snapshot(configmaps=[cm], reports={"n1": report(nested, configDigest="0123456789abcdef")})
    assert not emitted(nodes.node_agents, older, "l2-nested-lower")  # a report of another configuration
    assert emitted(nodes.node_agents, older, "node-report-stale")


def test_virtualised_node_when_dmi_names_a_hypervisor() -> None:
    s = doctor.Snapshot(reports={"n1": report(virtualization="QEMU"), "n2": report(virtualization=None)})
    [f] = emitted(nodes.node_agents, s, "virtualised-node")
    assert (f.severity, f.object) == ("warning", "node/n1")
    assert "the node is a VM (QEMU)" in f.cause and "forged transmits" in f.cause


def test_node_no_report_says_why() -> None:
    s = doctor.Snapshot(reports={"n1": report()}, report_errors={"n2": "no macvtapctl agent runs on this node"})
    [f] = emitted(nodes.node_agents, s, "node-no-report")
    assert (f.severity, f.object) == ("info", "node/n2")
    assert f.cause == "node-side checks not available: no macvtapctl agent runs on this node"
    assert not emitted(nodes.node_agents, doctor.Snapshot(reports={"n1": report()}), "node-no-report")


# --- 4. versions ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("server", "kv", "image", "phrase"), [
    ("v1.28.3", None, "v0.9.0", "before v0.10.0 crashes on Kubernetes >= 1.25"),
    ("v1.24.0", None, "v0.9.0", None),
    ("v1.28.3", None, "v0.10.0", None),
    (None, "v1.5.0", "v0.13.0", "KubeVirt >= v1.5 no longer chowns /dev/tapN"),
    (None, "v1.5.0", "v0.13.1", None),
    (None, "v1.4.0", "v0.13.0", None),
])
def test_version_pair_known_bad(server: str | None, kv: str | None, image: str, phrase: str | None) -> None:
    s = doctor.Snapshot(server_version=server, upstream=[upstream_ds(f"quay.io/kubevirt/macvtap-cni:{image}")],
                        kubevirts=[kubevirt({"observedKubeVirtVersion": kv})] if kv else [])
    found = emitted(cluster.versions, s, "version-pair")
    if phrase is None:
        assert found == []
        return
    [f] = found
    assert (f.severity, f.object) == ("error", "daemonset/macvtap/macvtap-cni") and phrase in f.cause


@pytest.mark.parametrize(("status", "phrase"), [
    ({"phase": "Deploying", "observedKubeVirtVersion": "v1.5.0",
      "conditions": [{"type": "Degraded", "status": "True", "message": "virt-handler is not ready"}]},
     "KubeVirt is Deploying, not Deployed (virt-operator has not finished): virt-handler is not ready"),
    ({"phase": "Deployed", "observedKubeVirtVersion": "v1.5.0", "targetKubeVirtVersion": "v1.6.0"},
     "KubeVirt is deploying v1.6.0 (still at v1.5.0)"),
    ({"phase": "Deployed", "observedKubeVirtVersion": "v1.5.0", "targetKubeVirtVersion": "v1.5.0"}, None),
    ({"observedKubeVirtVersion": "v1.5.0"}, None),  # no operator writes its status: not judged
])
def test_kubevirt_deploying_until_virt_operator_is_done(status: dict[str, Any], phrase: str | None) -> None:
    found = emitted(cluster.versions, doctor.Snapshot(kubevirts=[kubevirt(status)]), "kubevirt-deploying")
    if phrase is None:
        assert found == []
        return
    [f] = found
    assert (f.severity, f.object) == ("error", "kubevirt/kubevirt/kubevirt")
    assert f.cause == f"{phrase}: no VM starts before it is Deployed"


# --- 6 and 12: NAD content -----------------------------------------------------------------------------------------

def test_nad_ignored_keys_names_each_key_the_cni_ignores() -> None:
    s = doctor.Snapshot(nads=[nad(master="eth1", ipam={"type": "dhcp"}, promiscMode=True)])
    [f] = emitted(cluster.nad_content, s, "nad-ignored-keys")
    assert (f.severity, f.object) == ("warning", NAD_REF)
    assert f.cause.startswith("the macvtap CNI ignores master, ipam:")
    assert f.fix == "macvtapctl nad create dataplane -n default --resource dataplane --promisc"
    assert not emitted(cluster.nad_content, doctor.Snapshot(nads=[nad(promiscMode=True)]), "nad-ignored-keys")


def test_nad_mtu_above_the_lower_devices_mtu_on_a_node() -> None:
    reports = {"n1": report(lowerDevices={"eth1": {"mtu": 1500}}), "n2": report(lowerDevices={"eth1": {"mtu": 9000}})}
    s = doctor.Snapshot(nads=[nad(mtu=9000)], configmaps=[configmap(DATAPLANE)], reports=reports)
    [f] = emitted(cluster.nad_content, s, "nad-mtu")
    assert (f.severity, f.object, f.refs) == ("error", NAD_REF, ("node/n1",))
    assert f.cause.startswith("mtu 9000 is above eth1's MTU 1500 on node n1")
    assert f.fix == "macvtapctl nad create dataplane -n default --resource dataplane --mtu 1500"
    fits = doctor.Snapshot(nads=[nad(mtu=1500)], configmaps=[configmap(DATAPLANE)], reports=reports)
    assert not emitted(cluster.nad_content, fits, "nad-mtu")


def test_promisc_when_the_nad_does_not_set_promisc_mode() -> None:
    [f] = emitted(cluster.nad_content, doctor.Snapshot(nads=[nad()]), "promisc")
    assert (f.severity, f.object) == ("info", NAD_REF) and f.cause.startswith("no promiscMode")
    assert f.fix == "macvtapctl nad create dataplane -n default --resource dataplane --promisc"
    assert not emitted(cluster.nad_content, doctor.Snapshot(nads=[nad(promiscMode=True)]), "promisc")


# --- 8. the agent --------------------------------------------------------------------------------------------------

def test_agent_image_when_a_pod_cannot_pull() -> None:
    pulling = {"name": "agent", "image": "registry.example/x:v1", "restartCount": 0,
               "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    [f] = emitted(cluster.agent_health, doctor.Snapshot(agents=[agent_ds()], agent_pods=[agent_pod(pulling)]),
                  "agent-image")
    assert (f.severity, f.object) == ("error", "pod/macvtap/agent-n1")
    assert "pod agent-n1 on node n1 cannot pull registry.example/x:v1 (ImagePullBackOff" in f.cause
    running = {"name": "agent", "image": "registry.example/x:v1", "restartCount": 0, "state": {"running": {}}}
    fine = doctor.Snapshot(agents=[agent_ds()], agent_pods=[agent_pod(running)])
    assert not emitted(cluster.agent_health, fine, "agent-image")
    assert not emitted(cluster.agent_health, fine, "agent-restarts")


def test_agent_restarts_with_the_last_reason() -> None:
    restarted = {"name": "agent", "image": "registry.example/x:v1", "restartCount": 3, "state": {"running": {}},
                 "lastState": {"terminated": {"reason": "OOMKilled"}}}
    [f] = emitted(cluster.agent_health, doctor.Snapshot(agents=[agent_ds()], agent_pods=[agent_pod(restarted)]),
                  "agent-restarts")
    assert (f.severity, f.object) == ("warning", "pod/macvtap/agent-n1")
    assert f.cause == "3 restart(s) on node n1, last: OOMKilled"
    assert f.fix == "kubectl -n macvtap logs agent-n1 --previous"


def test_openshift_only_where_macvtap_is_in_use() -> None:
    [f] = emitted(cluster.agent_health, doctor.Snapshot(openshift=True, agents=[agent_ds()]), "openshift")
    assert (f.severity, f.object) == ("warning", "cluster/openshift") and "CNAO refuses macvtap" in f.cause
    assert emitted(cluster.agent_health, doctor.Snapshot(openshift=True, nads=[nad()]), "openshift")
    assert not emitted(cluster.agent_health, doctor.Snapshot(openshift=True), "openshift")  # nothing macvtap
    assert not emitted(cluster.agent_health, doctor.Snapshot(agents=[agent_ds()]), "openshift")


# --- 9. leftovers --------------------------------------------------------------------------------------------------

def test_stale_resource_on_a_node_that_no_configuration_serves() -> None:
    node = {"metadata": {"name": "n1"},
            "status": {"capacity": {f"{PREFIX}/dataplane": "100", f"{PREFIX}/renamed": "0", "cpu": "2"}}}
    [f] = emitted(nodes.stale_resources, doctor.Snapshot(nodes=[node], configmaps=[configmap(DATAPLANE)]),
                  "stale-resource")
    assert (f.severity, f.object) == ("warning", "node/n1")
    assert f.cause.startswith("resource 'renamed' is on the node but no configuration serves it")
    assert f.fix == ("kubectl patch node n1 --subresource=status --type=json -p "
                     "'[{\"op\":\"remove\",\"path\":\"/status/capacity/macvtap.network.kubevirt.io~1renamed\"}]'")
    every_nic = doctor.Snapshot(nodes=[node], configmaps=[configmap()])  # []: any name may be served
    assert not emitted(nodes.stale_resources, every_nic, "stale-resource")


# --- 10. MACs along the chain --------------------------------------------------------------------------------------

def test_mac_mismatch_between_the_spec_the_vmi_status_and_the_pods_network_status() -> None:
    pod = launcher()
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps(
        [{"name": "kindnet", "mac": "0a:00:00:00:00:01"}, {"name": "default/dataplane", "mac": "02:00:00:00:00:cc"}])
    s = doctor.Snapshot(vmis=[vmi("Running", spec_mac="02:00:00:00:00:AA", status_mac="02:00:00:00:00:bb")],
                        launchers=[pod])
    found = emitted(vms.mac_consistency, s, "mac-mismatch")
    assert [(f.severity, f.object) for f in found] == [("error", "virtualmachineinstance/default/web")] * 2
    assert "the VMI status has MAC 02:00:00:00:00:bb, the spec 02:00:00:00:00:aa" in found[0].cause
    assert "the pod's network-status has MAC 02:00:00:00:00:cc, the spec 02:00:00:00:00:aa" in found[1].cause
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps(
        [{"name": "default/dataplane", "mac": "02:00:00:00:00:aa"}])
    agree = doctor.Snapshot(vmis=[vmi("Running", spec_mac="02:00:00:00:00:AA", status_mac="02:00:00:00:00:aa")],
                            launchers=[pod])
    assert not emitted(vms.mac_consistency, agree, "mac-mismatch")


# --- 11. L2 semantics ----------------------------------------------------------------------------------------------

def test_l2_host_to_vm_said_once_with_the_shim_on_the_lower_device() -> None:
    s = doctor.Snapshot(nads=[nad(), nad("other")], configmaps=[configmap(DATAPLANE)])
    [f] = emitted(cluster.l2_explainers, s, "l2-host-to-vm")
    assert (f.severity, f.object) == ("info", NAD_REF) and "a node cannot reach its own VMs" in f.cause
    assert f.fix and f.fix.startswith("ip link add mvt-host link eth1 type macvlan mode bridge")
    assert not emitted(cluster.l2_explainers, doctor.Snapshot(configmaps=[configmap(DATAPLANE)]), "l2-host-to-vm")


def test_l2_mode_for_vepa_and_private_not_bridge() -> None:
    cm = configmap({"name": "hairpin", "lowerDevice": "eth1", "mode": "vepa"},
                   {"name": "alone", "lowerDevice": "eth2", "mode": "private"}, DATAPLANE)
    found = emitted(cluster.l2_explainers, doctor.Snapshot(nads=[nad()], configmaps=[cm]), "l2-mode")
    assert [(f.severity, f.object) for f in found] == [("info", "resource/hairpin"), ("info", "resource/alone")]
    assert "mode vepa: VMs on this node reach each other only if the switch port reflects frames" in found[0].cause
    assert "mode private: VMs on this node cannot reach each other at all" in found[1].cause
    assert not emitted(cluster.l2_explainers, doctor.Snapshot(nads=[nad()], configmaps=[configmap(DATAPLANE)]),
                       "l2-mode")


# --- 13. what failing workloads say --------------------------------------------------------------------------------

def test_workload_tap_invalid_on_a_vmi_that_does_not_run() -> None:
    scheduled = vmi()
    said = event(scheduled, "SyncFailed", "server error. command SyncVMI failed: \"LibvirtError(Code=1, Domain=0, "
                 "Message='Unable to create tap device net1: Invalid argument')\"", kind="VirtualMachineInstance")
    [f] = emitted(workloads.failing_workloads, doctor.Snapshot(nads=[nad()], vmis=[scheduled], events=[said]),
                  "workload-tap-invalid")
    assert (f.severity, f.object) == ("error", "virtualmachineinstance/default/web")
    assert "kubevirt#17392" in f.cause and f.fix == "kubectl describe virtualmachineinstance web -n default"
    running = vmi("Running")
    assert not emitted(workloads.failing_workloads, doctor.Snapshot(nads=[nad()], vmis=[running], events=[said]),
                       "workload-tap-invalid")


def test_workload_mac_in_use_gives_the_vm_or_the_pod_another_mac() -> None:
    message = "MAC 02:00:00:00:00:01 is already used by another macvtap on the same lower device"
    pod = launcher()
    s = doctor.Snapshot(nads=[nad()], waiting=[pod], events=[event(pod, "FailedCreatePodSandBox", message)])
    [f] = emitted(workloads.failing_workloads, s, "workload-mac-in-use")
    assert (f.severity, f.object) == ("error", "pod/default/virt-launcher-web-abcde")
    assert "the MAC is already on another macvtap of the same lower device" in f.cause
    assert f.fix and f.fix.startswith("give the VM another MAC")
    plain = launcher(vm=None)
    [g] = emitted(workloads.failing_workloads, doctor.Snapshot(
        nads=[nad()], waiting=[plain], events=[event(plain, "FailedCreatePodSandBox", message)]), "workload-mac-in-use")
    assert g.fix and g.fix.startswith("give the pod another MAC")
    other = doctor.Snapshot(nads=[nad()], waiting=[pod], events=[event(pod, "Failed", "bind: address already in use")])
    assert not emitted(workloads.failing_workloads, other, "workload-mac-in-use")  # not about a macvtap


def test_events_unreadable_only_when_a_workload_fails() -> None:
    s = doctor.Snapshot(nads=[nad()], waiting=[launcher()], events_error="events is forbidden: User cannot list")
    [f] = emitted(workloads.failing_workloads, s, "events-unreadable")
    assert (f.severity, f.object) == ("info", "cluster/events")
    assert f.cause == "events not read: events is forbidden: User cannot list"
    nothing_fails = doctor.Snapshot(nads=[nad()], events_error="events is forbidden: User cannot list")
    assert not emitted(workloads.failing_workloads, nothing_fails, "events-unreadable")


# --- 14. --probe-dhcp ----------------------------------------------------------------------------------------------

def probe(**answers: dict[str, Any]) -> doctor.Snapshot:
    return doctor.Snapshot(dhcp_resource="dataplane", dhcp_probes=dict(answers))


def test_dhcp_offer() -> None:
    s = probe(n1={"offered": True, "lower": "eth1", "detail": "offer of 198.51.100.101 from 198.51.100.1"})
    [f] = emitted(nodes.dhcp_probe, s, "dhcp-offer")
    assert (f.severity, f.object, f.fix) == ("info", "node/n1", None)
    assert f.cause == ("resource 'dataplane' on eth1: offer of 198.51.100.101 from 198.51.100.1: a guest asking DHCP "
                       "on it gets an address")
    assert not emitted(nodes.dhcp_probe, s, "dhcp-no-offer")


def test_dhcp_no_offer() -> None:
    s = probe(n1={"offered": False, "lower": "eth1", "detail": "no DHCP offer on eth1 within 8s"})
    [f] = emitted(nodes.dhcp_probe, s, "dhcp-no-offer")
    assert (f.severity, f.object) == ("warning", "node/n1")
    assert f.cause.startswith("resource 'dataplane' on eth1: no DHCP offer on eth1 within 8s: a guest asking DHCP "
                              "gets no address")
    assert not emitted(nodes.dhcp_probe, s, "dhcp-offer")


def test_dhcp_probe_failed_per_node_or_with_no_agent_at_all() -> None:
    [f] = emitted(nodes.dhcp_probe, probe(n1={"error": "resource 'dataplane' is not in this node's configuration"}),
                  "dhcp-probe-failed")
    assert (f.severity, f.object) == ("warning", "node/n1")
    assert f.cause == "DHCP probe of 'dataplane': resource 'dataplane' is not in this node's configuration"
    [g] = emitted(nodes.dhcp_probe, probe(), "dhcp-probe-failed")
    assert (g.severity, g.object, g.fix) == ("warning", "resource/dataplane", "macvtapctl install")
    assert "no node runs the macvtapctl agent" in g.cause
    assert not findings_of(nodes.dhcp_probe, doctor.Snapshot())  # no --probe-dhcp: no probe, no finding


def node(name: str, devices: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": {f"{PREFIX}/dataplane": str(devices)},
                                                   "conditions": [{"type": "Ready", "status": "True"}]}}


def running_vm(live: str = "True", strategy: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A running VMI on n1 (KubeVirt's LiveMigratable condition `live`) and its launcher pod holding one device."""
    v = vmi("Running", spec_mac="02:00:00:00:00:01")
    v["status"] |= {"nodeName": "n1", "conditions": [{"type": "LiveMigratable", "status": live, **(
        {} if live == "True" else {"reason": "DisksNotLiveMigratable", "message": "cannot migrate a hostDisk"})}]}
    if strategy:
        v["spec"]["evictionStrategy"] = strategy
    pod = launcher()
    pod["metadata"]["labels"]["kubevirt.io/created-by"] = "vmi-uid"
    pod["spec"]["nodeName"], pod["status"]["phase"] = "n1", "Running"
    return v, pod


def test_vm_not_migratable_quotes_kubevirt_and_weighs_the_eviction_strategy() -> None:
    v, pod = running_vm("False")
    s = doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v], launchers=[pod], nodes=[node("n1", 2), node("n2", 2)])
    [f] = emitted(vms.migration_readiness, s, "vm-not-migratable")
    assert (f.severity, f.object) == ("info", "virtualmachineinstance/default/web")
    assert f.cause == "KubeVirt: not live-migratable: DisksNotLiveMigratable: cannot migrate a hostDisk"
    v, pod = running_vm("False", strategy="LiveMigrate")
    [w] = emitted(vms.migration_readiness, doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v], launchers=[pod],
                                                              nodes=[node("n1", 2), node("n2", 2)]),
                  "vm-not-migratable")
    assert w.severity == "warning" and "evictionStrategy LiveMigrate: a drain of its node waits" in w.cause
    v, pod = running_vm("True")
    assert not findings_of(vms.migration_readiness, doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v],
                                                                    launchers=[pod],
                                                                    nodes=[node("n1", 2), node("n2", 2)]))


def test_migration_one_node_names_the_resource_no_other_node_advertises() -> None:
    v, pod = running_vm()
    s = doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v], launchers=[pod], nodes=[node("n1", 2), node("n2", 0)])
    [f] = emitted(vms.migration_readiness, s, "migration-one-node")
    assert (f.severity, f.object) == ("info", "virtualmachineinstance/default/web")
    assert f.cause.startswith("no schedulable node but n1 advertises 'dataplane': the VM cannot move"), f.cause
    assert "resource/dataplane" in f.refs


# --- 16. did a moved VM's network follow it? -------------------------------------------------------------------------

def links(mac: str, ifname: str = "net1") -> dict[str, Any]:
    return report(links=[{"mac": mac, "netns": "/run/netns/cni-1", "ifname": ifname, "lower": "eth1"}])


def test_migration_source_up_names_the_node_that_still_carries_a_moved_vms_mac() -> None:
    v, _ = running_vm()  # KubeVirt runs it on n1
    s = doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v], reports={"n1": links("02:00:00:00:00:01"),
                                                                      "n2": links("02:00:00:00:00:01")})
    [f] = emitted(vms.migration_source_up, s, "migration-source-up")
    assert (f.severity, f.object) == ("warning", "virtualmachineinstance/default/web") and "node/n2" in f.refs
    assert f.cause.startswith("KubeVirt runs the VM on node n1, but node n2 still has its MAC 02:00:00:00:00:01 on "
                              "net1 (lower device eth1)"), f.cause
    s.reports["n2"] = links("02:00:00:00:00:02")  # another VM's MAC there: nothing
    assert emitted(vms.migration_source_up, s, "migration-source-up") == []


def test_a_migrations_target_carries_the_mac_before_the_guest_moves_and_is_no_finding() -> None:
    v, _ = running_vm()
    v["status"]["migrationState"] = {"sourceNode": "n1", "targetNode": "n2", "completed": False}
    s = doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v], reports={"n2": links("02:00:00:00:00:01")})
    assert emitted(vms.migration_source_up, s, "migration-source-up") == []
    v["status"]["migrationState"]["completed"] = True  # over, and the VM still on n1: n2's link is stale
    assert [f.id for f in emitted(vms.migration_source_up, s, "migration-source-up")] == ["migration-source-up"]


def parked(mac: str) -> dict[str, Any]:
    return report(parked=[{"mac": mac, "netns": "/run/netns/cni-2", "ifname": "net1", "lower": "eth1"}])


def test_migration_target_parked_names_a_vm_whose_link_waits_on_the_node_it_runs_on() -> None:
    v, _ = running_vm()  # KubeVirt runs it on n1
    s = doctor.Snapshot(kubevirts=[kubevirt({})], vmis=[v], reports={"n1": parked("02:00:00:00:00:01")})
    [f] = emitted(vms.migration_target_parked, s, "migration-target-parked")
    assert (f.severity, f.object) == ("error", "virtualmachineinstance/default/web") and "node/n1" in f.refs
    assert f.cause.startswith("KubeVirt runs the VM on node n1, but the agent there holds its link net1 with MAC "
                              "02:00:00:00:00:01 parked"), f.cause
    v["status"]["migrationState"] = {"sourceNode": "n2", "targetNode": "n1", "completed": False}
    assert emitted(vms.migration_target_parked, s, "migration-target-parked") == []  # the end is not written yet
    v["status"]["migrationState"]["completed"] = True
    assert len(emitted(vms.migration_target_parked, s, "migration-target-parked")) == 1
    s.reports["n1"] = parked("02:00:00:00:00:02")  # another VM's target link: nothing
    assert emitted(vms.migration_target_parked, s, "migration-target-parked") == []
    s.reports = {"n2": parked("02:00:00:00:00:01")}  # parked on a node the VM does not run on: a target waiting
    assert emitted(vms.migration_target_parked, s, "migration-target-parked") == []


def test_migration_handoff_off_is_the_agents_own_word() -> None:
    s = doctor.Snapshot(reports={"n1": report(handoff={"enabled": False, "why": "cannot open a packet socket "
                                                       "(Operation not permitted; the agent needs NET_RAW)"})})
    [f] = emitted(nodes.node_agents, s, "migration-handoff-off")
    assert (f.severity, f.object) == ("warning", "node/n1") and "needs NET_RAW" in f.cause and "NET_RAW" in f.fix
    s.reports["n1"] = report(handoff={"enabled": True})
    assert emitted(nodes.node_agents, s, "migration-handoff-off") == []
    s.reports["n1"] = report()  # an agent from before the hand-off says nothing of it
    assert emitted(nodes.node_agents, s, "migration-handoff-off") == []


# --- the documentation's ids are all tested ------------------------------------------------------------------------

def documented_ids() -> tuple[set[str], set[str]]:
    """The ids docs/doctor.md documents under "## The checks": in backticks in each "### N." heading before its
    " — " (wildcards such as `vm-*` left out), and in the first cell of the table rows."""
    checks = (REPO / "docs" / "doctor.md").read_text().split("## The checks", 1)[1]
    headings: set[str] = set()
    rows: set[str] = set()
    for line in checks.splitlines():
        if heading := re.match(r"### \d+\. (.*)", line):
            headings.update(i for i in re.findall(r"`([^`]+)`", heading[1].split(" — ", 1)[0]) if "*" not in i)
        elif row := re.match(r"\| `([^`]+)` \|", line):
            rows.add(row[1])
    return headings, rows


def kubevirt_cr(version: str) -> dict[str, Any]:
    return {"kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "status": {"observedKubeVirtVersion": version}}


@pytest.mark.parametrize(("state", "version", "want", "severity"), [
    (injector.VERIFIED, "v1.9.0", "injection-verified", "info"),
    (injector.MISSING, "v1.9.0", "injection-missing", "error"),
    (injector.UNKNOWN, "v1.9.0", "external-injection", "warning"),
    (None, "v1.10.0", "external-injection", "warning"),  # not asked
])
def test_injection_is_proven_by_the_dry_run_pod_not_by_presence(state: str | None, version: str, want: str,
                                                                 severity: str) -> None:
    proof = injector.Proof(state, "a pod asking for default/dataplane ...", "default/dataplane") if state else None
    s = doctor.Snapshot(kubevirts=[kubevirt_cr(version)], injection=proof)
    found = [f for f in findings_of(cluster.versions, s)
             if f.id in ("injection-verified", "injection-missing", "external-injection")]
    assert [(f.id, f.severity) for f in found] == [(want, severity)]
    assert found[0].object == "kubevirt/kubevirt/kubevirt"
    if want != "injection-verified":
        assert "macvtapctl install --injector" in f"{found[0].fix} {found[0].cause}"
        assert found[0].fix == ("macvtapctl enable" if version == "v1.9.0" else "macvtapctl install --injector")
    # KubeVirt's own injection on (v1.9 with the gate disabled): nothing to say, whatever the proof.
    kv = kubevirt_cr(version)
    kv["spec"] = {"configuration": {"developerConfiguration": {"disabledFeatureGates": ["ExternalNetResourceInjection"]}}}
    if version == "v1.9.0":
        assert not [f for f in findings_of(cluster.versions, doctor.Snapshot(kubevirts=[kv], injection=proof))
                    if "inject" in f.id]


def test_every_documented_finding_id_has_a_unit_test() -> None:
    headings, rows = documented_ids()
    assert len(headings) >= 10 and len(rows) >= 5, (headings, rows)  # the parse found both: no vacuous pass
    tests = [p.read_text() for p in sorted((REPO / "tests" / "unit").rglob("*.py"))]
    missing = sorted(i for i in headings | rows if not any(f'"{i}"' in t or f"'{i}'" in t for t in tests))
    assert not missing, f"documented in docs/doctor.md but named by no unit test: {', '.join(missing)}"


def _upstream(probe: str) -> dict[str, Any]:
    return {"metadata": {"name": "macvtap-cni", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{
                "name": "macvtap-cni", "image": "quay.io/kubevirt/macvtap-cni:v0.13.1",
                "livenessProbe": {"exec": {"command": ["sh", "-c", probe]}}}]}}}}


GLOB_PROBE = "test -S /var/lib/kubelet/device-plugins/macvtap.network.kubevirt.io*"


@pytest.mark.parametrize(("entries", "probe", "severity"), [
    (2, GLOB_PROBE, "error"),  # two sockets: `test -S a b` -> too many arguments
    (0, GLOB_PROBE, "warning"),  # []: every NIC, so every node with two NICs
    (1, GLOB_PROBE, None),  # one socket: the probe works
    (2, "ls /var/lib/kubelet/device-plugins/macvtap.network.kubevirt.io* >/dev/null 2>&1", None),  # v0.13.2
])
def test_macvtap_cni_0_13_0_to_1_probe_restarts_with_two_resources(entries: int, probe: str,
                                                                     severity: str | None) -> None:
    """Issue 40: macvtap-cni v0.13.0-v0.13.1's own manifest probes with `test -S` on a glob; with two or more
    resources every probe fails and the pod restarts for ever. Read from the probe, not the image tag."""
    items = [{"name": f"r{i}", "lowerDevice": f"eth{i}"} for i in range(entries)]
    cm = {"metadata": {"name": dpconfig.CONFIGMAP_NAME, "namespace": "default"},
          "data": {dpconfig.CONFIG_KEY: json.dumps(items)}}
    s = doctor.Snapshot(upstream=[_upstream(probe)], configmaps=[cm])
    found = [f for f in findings_of(cluster.versions, s) if "too many arguments" in f.cause]
    if severity is None:
        assert found == []
    else:
        (f,) = found
        assert (f.id, f.severity, f.object) == ("version-pair", severity, "daemonset/default/macvtap-cni")
        assert "v0.13.2" in (f.fix or "") and "--take-over" in (f.fix or "")
