"""Which webhook configurations are an injector, and what a dry-run pod says about injection (rules/injector.py)."""

from __future__ import annotations

from typing import Any

import pytest

from macvtapctl.manifests import injector as m
from macvtapctl.rules import injector as rules


def mwc(name: str, service: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    hook: dict[str, Any] = {"name": "x.example.io", "clientConfig": {"url": "https://example"}}
    if service:
        hook["clientConfig"] = {"service": {"name": service, "namespace": "ns"}}
    return {"metadata": {"name": name, "labels": labels or {}}, "webhooks": [hook]}


@pytest.mark.parametrize(("name", "whose"), [
    ("network-resources-injector-config", "SR-IOV operator"),
    ("network-resources-injector-mutating-config", "installer"),
    ("virt-network-resources-injector-config", "HyperConverged"),
])
def test_known_injectors_are_found_by_name_and_named(name: str, whose: str) -> None:
    [found] = rules.injectors([mwc(name), mwc("cert-manager-webhook", "cert-manager")], m.NAME)
    assert found.name == name and whose in str(found) and f"mutatingwebhookconfiguration/{name}" in str(found)


def test_an_injector_under_another_name_is_found_by_the_service_it_calls() -> None:
    [found] = rules.injectors([mwc("my-nri", "network-resources-injector-service")], m.NAME)
    assert found.name == "my-nri"


def test_ours_and_unrelated_webhooks_are_not_injectors() -> None:
    assert rules.injectors([mwc(m.NAME, m.NAME), mwc("kubevirt-mutator", "virt-api")], m.NAME) == []


def pod(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}}


R = "macvtap.network.kubevirt.io/dataplane"


def test_judge_verified_when_admission_added_the_request() -> None:
    proof = rules.judge(pod({"limits": {R: "1"}, "requests": {R: "1"}}), "dataplane", "default/dataplane")
    assert proof.verified and proof.nad == "default/dataplane"


def test_judge_missing_when_the_pod_came_back_without_it() -> None:
    proof = rules.judge(pod({"limits": {"cpu": "1"}}), "dataplane", "default/dataplane")
    assert proof.state == rules.MISSING and R in proof.detail


def test_requested_counts_every_container_once() -> None:
    assert rules.requested(pod({"limits": {R: "1"}, "requests": {R: "1"}}, {"requests": {R: "2"}}), R) == 3


def test_probe_pod_asks_for_the_nad_and_requests_nothing() -> None:
    p = rules.probe_pod("vms", "dataplane", "vms")
    assert p["metadata"]["annotations"] == {rules.NETWORKS_ANNOTATION: "vms/dataplane"}
    assert "resources" not in p["spec"]["containers"][0]
    assert p["spec"]["securityContext"]["runAsNonRoot"] is True  # restricted namespaces admit it
