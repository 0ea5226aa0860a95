"""The View: what a snapshot means, derived once per run. Every check asks for the ConfigMap in effect, per VM and
per node; its JSON is parsed once per diagnose, not once per question (at 5,000 VMs re-parsing made doctor -A and
status 2.5-3.3x kubectl)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from macvtapctl.rules import doctor, dpconfig, nodes

PREFIX = "macvtap.network.kubevirt.io/"


def configmap(entries: str, name: str = dpconfig.CONFIGMAP_NAME, namespace: str = "macvtap") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "data": {dpconfig.CONFIG_KEY: entries}}


def vm(i: int) -> dict[str, Any]:
    return {"kind": "VirtualMachine", "metadata": {"name": f"vm{i}", "namespace": "default"},
            "spec": {"template": {"spec": {"domain": {"devices": {"interfaces": [
                {"name": "lan", "binding": {"name": "macvtap"}, "macAddress": f"02:00:00:00:00:{i:02x}"}]}},
                "networks": [{"name": "lan", "multus": {"networkName": "lan0"}}]}}}}


def node(name: str, **allocatable: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": {PREFIX + k: v for k, v in allocatable.items()}}}


def test_diagnose_parses_the_config_once_however_many_vms_and_nodes_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []
    real = dpconfig.parse

    def counting(text: str | None, *, where: str = dpconfig.CONFIG_KEY) -> dpconfig.Config:
        calls.append(text)
        return real(text, where=where)

    monkeypatch.setattr(dpconfig, "parse", counting)
    s = doctor.Snapshot(configmaps=[configmap(json.dumps([{"name": "lan0", "lowerDevice": "eth0"}]))],
                        vms=[vm(i) for i in range(100)], nodes=[node(f"n{i}", lan0="4") for i in range(20)])
    doctor.diagnose(s)
    assert len(calls) == 1


def test_the_config_in_effect_and_why_it_cannot_be_read() -> None:
    v = doctor.View.of(doctor.Snapshot(configmaps=[configmap(json.dumps([{"name": "lan1", "lowerDevice": "eth1"}]))]))
    assert v.config is not None and [i["name"] for i in v.config.items] == ["lan1"] and v.config_error is None
    assert v.lower_of("lan1") == "eth1" and v.lower_of("other") is None
    broken = doctor.View.of(doctor.Snapshot(configmaps=[configmap("[{")]))
    assert broken.configmap is not None and broken.config is None and broken.config_error
    assert doctor.View.of(doctor.Snapshot()).configmap is None


def test_cnaos_pointer_picks_the_configmap_in_effect() -> None:
    ours, cnao = configmap("[]"), configmap(json.dumps([{"name": "a", "lowerDevice": "eth0"}]), name="my-macvtap")
    v = doctor.View.of(doctor.Snapshot(configmaps=[ours, cnao], cnao_configmap="my-macvtap"))
    assert v.configmap is cnao


def test_advertised_is_the_one_reading_of_a_nodes_allocatable() -> None:
    """Listed at 0 (a gone plugin's resource the kubelet keeps) counts as listed, not as devices; a value that is
    not a count gives no devices, as nodes.allocatable reads it."""
    n = node("n1", lan0="3", lan1="0", lan2="x")
    assert nodes.advertised(n) == {"lan0": 3, "lan1": 0, "lan2": 0}
    assert {r: nodes.allocatable(n, r) for r in ("lan0", "lan1", "lan2", "none")} == {
        "lan0": 3, "lan1": 0, "lan2": 0, "none": 0}
    v = doctor.View.of(doctor.Snapshot(nodes=[n, node("n2")]))
    assert v.advertised == {"n1": {"lan0": 3, "lan1": 0, "lan2": 0}, "n2": {}}


def test_bindings_kubevirt_and_a_second_cr() -> None:
    kv = {"kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
          "spec": {"configuration": {"network": {"binding": {"macvtap": {"domainAttachmentType": "tap"},
                                                             "passt": {"sidecarImage": "x"}, "odd": "tap"}}}},
          "status": {"observedKubeVirtVersion": "v1.5.2"}}
    v = doctor.View.of(doctor.Snapshot(kubevirts=[kv], hco_bindings={"mine": {"domainAttachmentType": "tap"}}))
    assert v.kubevirt is kv and v.kubevirt_version == (1, 5, 2)
    assert v.macvtap_bindings == ["macvtap", "mine"]  # not "odd": a binding is an object
    two = doctor.View.of(doctor.Snapshot(kubevirts=[kv, kv]))
    assert two.kubevirt is None and two.kubevirt_version is None and two.macvtap_bindings == []


def test_a_report_of_another_configuration_is_stale() -> None:
    text = json.dumps([{"name": "lan0", "lowerDevice": "eth0"}])
    s = doctor.Snapshot(configmaps=[configmap(text)], reports={
        "now": {"configDigest": dpconfig.digest(text)}, "before": {"configDigest": "sha256:old"}, "silent": {},
        "none": None})
    assert doctor.View.of(s).stale_reports == {"before"}
