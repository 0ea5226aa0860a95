"""`status`'s rules without a cluster: each broken link of the chain is one named problem (ops/status.py)."""

from __future__ import annotations

import json
from typing import Any

from macvtapctl.manifests import agent as agentm
from macvtapctl.ops.status import collect

CM = "macvtap-deviceplugin-config"
DP = "macvtap.network.kubevirt.io/dp"


def kubevirt(version: str, gates: dict[str, list[str]] | None = None, bindings: bool = True) -> dict[str, Any]:
    conf: dict[str, Any] = {"developerConfiguration": gates or {}}
    if bindings:
        conf["network"] = {"binding": {"macvtap": {"domainAttachmentType": "tap"}}}
    return {"metadata": {"name": "kubevirt", "namespace": "kubevirt"}, "spec": {"configuration": conf},
            "status": {"observedKubeVirtVersion": version}}


def nad(name: str, resource: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": f"macvtap.network.kubevirt.io/{resource}"}},
            "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": name, "type": "macvtap"})}}


class FakeKube:
    def __init__(self, kv: dict[str, Any], conf: Any, nads: list[dict[str, Any]], ready: int = 1) -> None:
        cm = {"metadata": {"name": CM, "namespace": "macvtap"}, "data": {"DP_MACVTAP_CONF": json.dumps(conf)}}
        ds = {"metadata": {"name": agentm.AGENT_NAME, "namespace": "macvtap", "generation": 1,
                           "labels": {"app.kubernetes.io/name": "macvtapctl-agent"}},
              "status": {"desiredNumberScheduled": 1, "numberReady": ready, "updatedNumberScheduled": 1,
                         "observedGeneration": 1}}  # what the DaemonSet controller writes
        node = {"metadata": {"name": "node-a"}, "status": {"capacity": {DP: "100"}, "allocatable": {DP: "100"}}}
        self.lists = {"kubevirts": [kv], "configmaps": [cm], "daemonsets": [ds], "network-attachment-definitions": nads,
                      "nodes": [node], "virtualmachineinstances": [], "pods": []}

    def list(self, res: Any, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        return self.lists.get(res.plural, [])

    def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return next((o for o in self.lists.get(res.plural, []) if o["metadata"]["name"] == name), None)


GOOD = [{"name": "dp", "lowerDevice": "eth0"}]


def test_a_complete_chain_has_no_problems() -> None:
    doc = collect(FakeKube(kubevirt("v1.5.0"), GOOD, [nad("dp", "dp")]))  # type: ignore[arg-type]
    assert doc["problems"] == [] and doc["complete"]


def test_each_broken_link_is_one_named_problem() -> None:
    doc = collect(FakeKube(kubevirt("v1.4.0", bindings=False), [{"name": "dp", "master": "eth0"}],  # type: ignore[arg-type]
                           [nad("dp", "dp")], ready=0))
    problems = doc["problems"]
    assert "no macvtap binding registered (run: macvtapctl enable)" in problems
    assert "feature gate NetworkBindingPlugins is missing (KubeVirt < v1.5)" in problems
    assert any("entry 'dp': key 'master' is not read" in p for p in problems)
    assert "NAD default/dp: resource 'dp' is not exposed" in problems  # a refused entry exposes nothing
    assert any(p.startswith(f"DaemonSet macvtap/{agentm.AGENT_NAME}: 0/1 pods ready") for p in problems)
    assert not doc["complete"]


def test_the_injection_gate_is_named_wherever_it_is_on() -> None:
    on_by_hand = kubevirt("v1.8.0", {"featureGates": ["ExternalNetResourceInjection"]})
    assert "note" in collect(FakeKube(on_by_hand, GOOD, []))["kubevirt"]  # type: ignore[arg-type]
    assert "note" not in collect(FakeKube(kubevirt("v1.8.0"), GOOD, []))["kubevirt"]  # type: ignore[arg-type]
    assert "note" in collect(FakeKube(kubevirt("v1.9.0"), GOOD, []))["kubevirt"]  # type: ignore[arg-type]


def test_quirks_upstream_accepts_are_warnings_not_problems() -> None:
    doc = collect(FakeKube(kubevirt("v1.5.0"), [{"Name": "dp", "lowerDevice": "eth0", "capacity": 0}],  # type: ignore[arg-type]
                           [nad("dp", "dp")]))
    assert doc["problems"] == [] and len(doc["deviceplugin"]["warnings"]) == 2


def test_kubevirt_not_yet_deployed_is_a_problem_for_status_and_doctor_alike() -> None:
    from macvtapctl import doctor

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
        problems = collect(FakeKube(kv, GOOD, [nad("dp", "dp")]))["problems"]  # type: ignore[arg-type]
        found = [f for f in doctor.versions(doctor.Snapshot(kubevirts=[kv])) if f.id == "kubevirt-deploying"]
        if expected is None:
            assert problems == [] and found == [], state
        else:
            assert problems == [expected], state
            assert len(found) == 1 and found[0].cause.startswith(expected) and found[0].severity == "error", state
