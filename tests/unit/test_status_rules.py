"""`status` is a view of doctor's snapshot (ops/status.py): on plain dicts, its tables and its problems, which are
doctor's error findings on the same snapshot — one judge (issue 25)."""

from __future__ import annotations

import json
from typing import Any

from macvtapctl import identity
from macvtapctl.manifests import agent as agentm
from macvtapctl.ops.status import problem, view
from macvtapctl.rules import doctor

CM = "macvtap-deviceplugin-config"
DP = "macvtap.network.kubevirt.io/dp"


def kubevirt(version: str, gates: dict[str, list[str]] | None = None, bindings: bool = True) -> dict[str, Any]:
    conf: dict[str, Any] = {"developerConfiguration": gates or {}}
    if bindings:
        conf["network"] = {"binding": {"macvtap": {"domainAttachmentType": "tap"}}}
    return {"kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {"configuration": conf}, "status": {"observedKubeVirtVersion": version}}


def nad(name: str, resource: str) -> dict[str, Any]:
    return {"kind": "NetworkAttachmentDefinition", "metadata": {"name": name, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": f"macvtap.network.kubevirt.io/{resource}"}},
            "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": name, "type": "macvtap",
                                           "promiscMode": True})}}


def snapshot(kv: dict[str, Any] | None, conf: Any, nads: list[dict[str, Any]], ready: int = 1,
             allocatable: str = "100") -> doctor.Snapshot:
    cm = {"metadata": {"name": CM, "namespace": "macvtap"}, "data": {"DP_MACVTAP_CONF": json.dumps(conf)}}
    ds = agentm.daemonset(agentm.InstallOptions())  # as install writes it, with what its controller reports
    ds["metadata"]["generation"] = 1
    ds["status"] = {"desiredNumberScheduled": 1, "numberReady": ready, "updatedNumberScheduled": 1,
                    "observedGeneration": 1}
    node = {"metadata": {"name": "node-a"}, "status": {"capacity": {DP: "100"}, "allocatable": {DP: allocatable}}}
    pod = {"metadata": {"name": "agent-a", "namespace": "macvtap",
                        "ownerReferences": [{"kind": "DaemonSet", "name": identity.AGENT_NAME}]},
           "spec": {"nodeName": "node-a"}, "status": {"phase": "Running"}}
    return doctor.Snapshot(kubevirts=[kv] if kv else [], configmaps=[cm] if conf is not None else [], agents=[ds],
                           agent_pods=[pod], nodes=[node], nads=nads,
                           reports={"node-a": {"checks": [], "configSource": {"source": "api", "from": "x"}}})


def status_of(s: doctor.Snapshot) -> dict[str, Any]:
    return view(s, doctor.View.of(s), doctor.diagnose(s))


GOOD = [{"name": "dp", "lowerDevice": "eth0"}]


def test_a_complete_chain_has_no_problems_and_doctor_no_error() -> None:
    s = snapshot(kubevirt("v1.5.0"), GOOD, [nad("dp", "dp")])
    doc = status_of(s)
    assert doc["problems"] == [] and doc["complete"]
    assert not [f for f in doctor.diagnose(s) if f.severity == doctor.ERROR]
    assert doc["agents"] == [{"namespace": "macvtap", "name": identity.AGENT_NAME, "kind": "macvtapctl", "desired": 1,
                              "ready": 1, "configMap": CM, "configSources": {"node-a": "api"}}]
    assert doc["nads"] == [{"namespace": "default", "name": "dp", "resource": "dp", "exposed": True,
                            "advertised": True}]
    assert doc["kubevirt"] == {"installed": True, "version": "v1.5.0", "phase": None, "macvtapBindings": ["macvtap"]}


def test_each_broken_link_is_doctors_error_finding() -> None:
    s = snapshot(kubevirt("v1.4.0", bindings=False), [{"name": "dp", "master": "eth0"}], [nad("dp", "dp")], ready=0,
                 allocatable="0")
    doc = status_of(s)
    errors = [f for f in doctor.diagnose(s) if f.severity == doctor.ERROR]
    assert doc["problems"] == [problem(f) for f in errors] and not doc["complete"]
    ids = {f.id for f in errors}
    assert {"binding-missing", "binding-gate", "dp-config", "resource-capacity", "agent-health"} <= ids, ids
    assert any("no macvtap network binding" in p and "(fix: macvtapctl enable)" in p for p in doc["problems"])
    assert any("key 'master' is not read" in p for p in doc["problems"])
    assert doc["nads"][0]["exposed"] is False  # a refused entry exposes nothing


def test_an_empty_cluster_is_incomplete_for_both() -> None:
    s = doctor.Snapshot()
    doc = status_of(s)
    ids = {f.id for f in doctor.diagnose(s) if f.severity == doctor.ERROR}
    assert ids == {"kubevirt-missing", "dp-config", "agent-health"}, ids
    assert len(doc["problems"]) == 3 and not doc["complete"]
    assert doc["deviceplugin"]["present"] is False and doc["agents"] == []


def test_the_injection_gate_is_named_wherever_it_is_on() -> None:
    on_by_hand = kubevirt("v1.8.0", {"featureGates": ["ExternalNetResourceInjection"]})
    assert "note" in status_of(snapshot(on_by_hand, GOOD, []))["kubevirt"]
    assert "note" not in status_of(snapshot(kubevirt("v1.8.0"), GOOD, []))["kubevirt"]
    assert "note" in status_of(snapshot(kubevirt("v1.9.0"), GOOD, []))["kubevirt"]


def test_quirks_upstream_accepts_are_warnings_not_problems() -> None:
    doc = status_of(snapshot(kubevirt("v1.5.0"), [{"Name": "dp", "lowerDevice": "eth0", "capacity": 0}],
                             [nad("dp", "dp")]))
    assert doc["problems"] == [] and len(doc["deviceplugin"]["warnings"]) == 2


def test_hyperconverged_bindings_count_for_both() -> None:
    """A binding HyperConverged will propagate counts (it may not have reconciled yet) — for status and doctor's
    VM checks alike, from one rule (the View's bindings)."""
    s = snapshot(kubevirt("v1.5.0", bindings=False), GOOD, [nad("dp", "dp")])
    assert "binding-missing" in {f.id for f in doctor.diagnose(s)}
    s.hco_bindings = {"macvtap": {"domainAttachmentType": "tap"}}
    doc = status_of(s)
    assert doc["complete"] and doc["kubevirt"]["macvtapBindings"] == ["macvtap"]


def test_a_node_whose_agent_reads_the_file_is_shown_and_warned() -> None:
    s = snapshot(kubevirt("v1.5.0"), GOOD, [nad("dp", "dp")])
    s.reports["node-a"] = {"checks": [], "configSource": {
        "source": "file", "from": "/etc/macvtap/DP_MACVTAP_CONF",
        "detail": "the API server does not answer (forbidden: the agent's Role must allow ...)"}}
    doc = status_of(s)
    assert doc["agents"][0]["configSources"] == {"node-a": "file"}
    [f] = [f for f in doctor.diagnose(s) if f.id == "config-source"]
    assert f.severity == doctor.WARNING and f.object == "node/node-a" and "sync period" in f.cause
    assert f.fix is not None and f.fix.startswith("macvtapctl install")
    assert doc["complete"]  # a warning: changes arrive late, nothing is broken


def test_kubevirt_not_yet_deployed_is_a_problem_for_status_and_doctor_alike() -> None:
    states = {
        "deploying": ({"phase": "Deploying", "observedKubeVirtVersion": "v1.7.0",
                       "conditions": [{"type": "Degraded", "status": "True", "message": "virt-handler 0/1"}]},
                      "KubeVirt is Deploying, not Deployed (virt-operator has not finished): virt-handler 0/1"),
        "updating": ({"phase": "Deployed", "observedKubeVirtVersion": "v1.7.0", "targetKubeVirtVersion": "v1.8.0"},
                     "KubeVirt is deploying v1.8.0 (still at v1.7.0)"),
        "deployed": ({"phase": "Deployed", "observedKubeVirtVersion": "v1.7.0",
                      "targetKubeVirtVersion": "v1.7.0"}, None),
        "no operator": ({"observedKubeVirtVersion": "v1.7.0"}, None),
    }
    for state, (status, expected) in states.items():
        kv = kubevirt("v1.7.0")
        kv["status"] = status
        problems = status_of(snapshot(kv, GOOD, [nad("dp", "dp")]))["problems"]
        if expected is None:
            assert problems == [], state
        else:
            assert len(problems) == 1 and expected in problems[0], (state, problems)


# status's tables written out by hand, on the states where status's own copies of doctor's facts disagreed with
# doctor's (issue 41): each expectation is what a user reads, not rebuilt from doctor's findings.
OTHER_CM = "macvtap-deviceplugin-config"


def test_status_by_hand_a_binding_that_is_not_an_object_and_a_resource_listed_at_zero() -> None:
    """A binding named like ours but not an object (status read it with `or {}` and crashed on a string, doctor
    skipped it), and a resource the node lists at 0 (the kubelet keeps a gone plugin's resource): not advertised,
    and doctor's resource-capacity error is status's problem."""
    kv = kubevirt("v1.5.0")
    kv["spec"]["configuration"]["network"]["binding"]["other"] = "tap"
    s = snapshot(kv, GOOD, [nad("dp", "dp")], allocatable="0")
    doc = status_of(s)
    assert doc["kubevirt"] == {"installed": True, "version": "v1.5.0", "phase": None, "macvtapBindings": ["macvtap"]}
    assert doc["nodes"] == [{"node": "node-a", "resource": "dp", "capacity": "100", "allocatable": "0", "inUse": 0}]
    assert doc["nads"] == [{"namespace": "default", "name": "dp", "resource": "dp", "exposed": True,
                            "advertised": False}]
    assert doc["problems"] == [
        "networkattachmentdefinition/default/dp: resource 'dp' has no allocatable device on any schedulable node"]
    assert doc["complete"] is False


def test_status_by_hand_two_configmaps_the_one_the_agent_reads_is_shown() -> None:
    """Two device-plugin ConfigMaps: status shows the one the agent reads (doctor's choice), with its entries, and
    doctor's warning about the other is a warning, not a problem."""
    s = snapshot(kubevirt("v1.5.0"), GOOD, [nad("dp", "dp")])
    stray = {"metadata": {"name": OTHER_CM, "namespace": "default"},
             "data": {"DP_MACVTAP_CONF": json.dumps([{"name": "other", "lowerDevice": "eth9"}])}}
    s.configmaps.insert(0, stray)
    doc = status_of(s)
    assert doc["deviceplugin"] == {
        "namespace": "macvtap", "configMap": CM, "present": True, "exposeAll": False,
        "entries": [{"name": "dp", "lowerDevice": "eth0"}], "warnings": [],
        "configMaps": [{"namespace": "default", "name": OTHER_CM}, {"namespace": "macvtap", "name": CM}]}
    assert doc["problems"] == [] and doc["complete"] is True
    assert doc["warnings"] == [
        "configmap/macvtap/macvtap-deviceplugin-config: 2 device-plugin ConfigMaps: default/macvtap-deviceplugin-config"
        " (read by no device plugin); macvtap/macvtap-deviceplugin-config (read by DaemonSet macvtap/macvtapctl-agent)"
        "; macvtapctl expose edits only one of them (fix: kubectl -n default delete configmap "
        "macvtap-deviceplugin-config (if it holds no entry you need))"]


def test_status_by_hand_the_injection_gate_enabled_and_disabled_at_once() -> None:
    """v1.8 with ExternalNetResourceInjection in both lists: disabled wins (KubeVirt's rule), so no note and no
    warning — status once read the enabled list alone."""
    kv = kubevirt("v1.8.0", {"featureGates": ["ExternalNetResourceInjection"],
                             "disabledFeatureGates": ["ExternalNetResourceInjection"]})
    doc = status_of(snapshot(kv, GOOD, [nad("dp", "dp")]))
    assert doc["kubevirt"] == {"installed": True, "version": "v1.8.0", "phase": None, "macvtapBindings": ["macvtap"]}
    assert doc["warnings"] == [] and doc["problems"] == [] and doc["complete"] is True
