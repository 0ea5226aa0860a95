"""Planning the KubeVirt CR change for each version range, keeping everything else intact."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.rules import kubevirt as kvplan


def kv(**conf) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": "kubevirt", "resourceVersion": "7"},
            "spec": {"configuration": conf}}


RICH = kv(
    developerConfiguration={"featureGates": ["Snapshot", "HotplugVolumes"], "disabledFeatureGates": ["Foo"]},
    network={"binding": {"passt": {"sidecarImage": "quay.io/passt:1", "migration": {"method": "link-refresh"}}},
             "permitBridgeInterfaceOnPodNetwork": False, "defaultNetworkInterface": "masquerade"},
)


@pytest.mark.parametrize(("text", "parsed"), [
    ("v1.5.0", (1, 5, 0)), ("1.4.2", (1, 4, 2)), ("v1.9.0-rc.1", (1, 9, 0)), ("v1.10", (1, 10, 0)),
    ("", None), (None, None), ("latest", None), ("v1", None),
])
def test_parse_version(text, parsed) -> None:
    assert kvplan.parse_version(text) == parsed


def test_unsupported_old_version() -> None:
    with pytest.raises(PreconditionError, match=r"v1\.0\.0 is not supported"):
        kvplan.plan_enable(kv(), (1, 0, 0))


def test_missing_version_needs_override() -> None:
    with pytest.raises(PreconditionError, match="--kubevirt-version"):
        kvplan.require_version(None, None)
    assert kvplan.require_version(None, "v1.4.0") == (1, 4, 0)
    with pytest.raises(UsageError, match='"soon"'):
        kvplan.require_version("v1.5.0", "soon")


def test_v14_adds_gate_and_keeps_everything_else() -> None:
    plan = kvplan.plan_enable(RICH, (1, 4, 0))
    after = kvplan.apply_plan(RICH, plan)
    dev = after["spec"]["configuration"]["developerConfiguration"]
    assert dev["featureGates"] == ["Snapshot", "HotplugVolumes", "NetworkBindingPlugins"]
    assert dev["disabledFeatureGates"] == ["Foo"]
    net = after["spec"]["configuration"]["network"]
    assert net["binding"]["passt"] == RICH["spec"]["configuration"]["network"]["binding"]["passt"]
    assert net["binding"]["macvtap"] == {"domainAttachmentType": "tap"}
    assert net["permitBridgeInterfaceOnPodNetwork"] is False
    assert net["defaultNetworkInterface"] == "masquerade"
    # the merge patch carries only what changes (lists are atomic, so the whole new list)
    assert plan.patch == {"spec": {"configuration": {
        "developerConfiguration": {"featureGates": ["Snapshot", "HotplugVolumes", "NetworkBindingPlugins"]},
        "network": {"binding": {"macvtap": {"domainAttachmentType": "tap"}}}}}}


def test_v11_creates_missing_gate_list() -> None:
    bare = {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "k"}, "spec": {}}
    after = kvplan.apply_plan(bare, kvplan.plan_enable(bare, (1, 1, 0)))
    assert after["spec"]["configuration"]["developerConfiguration"]["featureGates"] == ["NetworkBindingPlugins"]


def test_v15_adds_no_gate_and_flags_redundant_one() -> None:
    obj = kv(developerConfiguration={"featureGates": ["NetworkBindingPlugins"]})
    plan = kvplan.plan_enable(obj, (1, 5, 0))
    assert "developerConfiguration" not in plan.patch["spec"]["configuration"]
    assert any("redundant" in w for w in plan.warnings)
    clean = kvplan.plan_enable(kv(), (1, 6, 2))
    assert clean.warnings == []


def test_v19_disables_injection_gate_by_default() -> None:
    plan = kvplan.plan_enable(RICH, (1, 9, 0))
    dev = plan.patch["spec"]["configuration"]["developerConfiguration"]
    assert dev == {"disabledFeatureGates": ["Foo", "ExternalNetResourceInjection"]}
    assert any("ExternalNetResourceInjection" in n for n in plan.notes)


def test_v19_external_injector_leaves_gates() -> None:
    plan = kvplan.plan_enable(kv(), (1, 9, 0), external_injector=True)
    assert "developerConfiguration" not in plan.patch["spec"]["configuration"]
    assert any("network-resources-injector" in n for n in plan.notes)


@pytest.mark.parametrize("version", [(1, 8, 0), (1, 8, 2), (1, 9, 0), (1, 10, 1)])
def test_explicitly_enabled_injection_is_a_conflict_to_resolve_wherever_the_gate_exists(version) -> None:
    """Issue 13.17: the gate exists from v1.8 (off by default there): enabled by hand it breaks macvtap on v1.8 too."""
    obj = kv(developerConfiguration={"featureGates": ["ExternalNetResourceInjection"]})
    with pytest.raises(PreconditionError, match="--external-injector"):
        kvplan.plan_enable(obj, version)


def test_v18_leaves_the_injection_gate_off_as_it_is() -> None:
    plan = kvplan.plan_enable(kv(), (1, 8, 0))
    assert "developerConfiguration" not in plan.patch["spec"]["configuration"]
    assert any("off by default on v1.8.0" in n for n in plan.notes)


def test_already_enabled_is_unchanged() -> None:
    for version in ((1, 4, 0), (1, 5, 0), (1, 9, 0)):
        after = kvplan.apply_plan(RICH, kvplan.plan_enable(RICH, version))
        assert not kvplan.plan_enable(after, version).changed


def test_foreign_binding_with_same_name_is_refused_unless_forced() -> None:
    obj = kv(network={"binding": {"macvtap": {"sidecarImage": "x", "domainAttachmentType": "tap"}}})
    with pytest.raises(PreconditionError, match="--binding-name"):
        kvplan.plan_enable(obj, (1, 5, 0))
    forced = kvplan.apply_plan(obj, kvplan.plan_enable(obj, (1, 5, 0), force=True))
    assert forced["spec"]["configuration"]["network"]["binding"]["macvtap"] == {"domainAttachmentType": "tap"}


def test_custom_binding_name() -> None:
    after = kvplan.apply_plan(kv(), kvplan.plan_enable(kv(), (1, 5, 0), binding_name="mvtap"))
    assert after["spec"]["configuration"]["network"]["binding"] == {"mvtap": {"domainAttachmentType": "tap"}}


def test_disable_removes_only_our_binding() -> None:
    enabled = kvplan.apply_plan(RICH, kvplan.plan_enable(RICH, (1, 4, 0)))
    after = kvplan.apply_plan(enabled, kvplan.plan_disable(enabled))
    assert set(after["spec"]["configuration"]["network"]["binding"]) == {"passt"}
    assert "NetworkBindingPlugins" in after["spec"]["configuration"]["developerConfiguration"]["featureGates"]
    assert not kvplan.plan_disable(after).changed


def test_guarded_patch_carries_resource_version() -> None:
    assert kvplan.guarded({"spec": {"a": 1}}, "42") == {"spec": {"a": 1}, "metadata": {"resourceVersion": "42"}}


@given(st.lists(st.sampled_from(["A", "B", "Snapshot", "NetworkBindingPlugins", "X"]), unique=True),
       st.sampled_from([(1, 1, 0), (1, 3, 5), (1, 4, 0), (1, 5, 0), (1, 8, 1), (1, 9, 0), (1, 10, 2)]))
def test_enable_never_drops_a_gate(gates: list[str], version: tuple[int, int, int]) -> None:
    obj = kv(developerConfiguration={"featureGates": list(gates)})
    # From v1.10 enable needs an injector (--external-injector); the gates are kept either way.
    after = kvplan.apply_plan(obj, kvplan.plan_enable(obj, version, external_injector=version >= (1, 10, 0)))
    assert set(gates) <= set(after["spec"]["configuration"]["developerConfiguration"]["featureGates"])
    assert kvplan.binding_of(after, "macvtap") == {"domainAttachmentType": "tap"}


# --- HyperConverged ---

def hco(**spec) -> dict:
    return {"apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
            "metadata": {"name": "kubevirt-hyperconverged", "namespace": "kubevirt", "resourceVersion": "3"},
            "spec": spec}


def test_hco_binding_goes_to_network_binding() -> None:
    plan = kvplan.plan_enable_hco(hco(), kv(), (1, 5, 0))
    assert plan.patch == {"spec": {"networkBinding": {"macvtap": {"domainAttachmentType": "tap"}}}}


def test_hco_gate_goes_through_jsonpatch_annotation_keeping_existing_ops() -> None:
    existing = [{"op": "add", "path": "/spec/configuration/cpuRequest", "value": "100m"}]
    h = hco()
    h["metadata"]["annotations"] = {kvplan.HCO_JSONPATCH_ANNOTATION: json.dumps(existing)}
    plan = kvplan.plan_enable_hco(h, kv(developerConfiguration={"featureGates": ["A"]}), (1, 9, 0))
    ops = json.loads(plan.patch["metadata"]["annotations"][kvplan.HCO_JSONPATCH_ANNOTATION])
    assert ops[0] == existing[0]
    assert ops[1] == {"op": "add", "path": "/spec/configuration/developerConfiguration/disabledFeatureGates",
                      "value": ["ExternalNetResourceInjection"]}


def test_hco_unchanged_when_already_configured() -> None:
    h = hco(networkBinding={"macvtap": {"domainAttachmentType": "tap"}})
    assert not kvplan.plan_enable_hco(h, kv(), (1, 5, 0)).changed


def test_hco_malformed_annotation_is_refused() -> None:
    h = hco()
    h["metadata"]["annotations"] = {kvplan.HCO_JSONPATCH_ANNOTATION: "[{oops"}
    with pytest.raises(PreconditionError, match="not valid JSON"):
        kvplan.plan_enable_hco(h, kv(), (1, 4, 0))


@pytest.mark.parametrize("version", [(1, 10, 0), (1, 11, 2)])
def test_from_v110_enable_requires_an_injector_and_never_relies_on_disabled_gates(version) -> None:
    """v1.10: ExternalNetResourceInjection is GA and KubeVirt's own injection is deleted (kubevirt#18497), so
    listing the gate in disabledFeatureGates would do nothing: enable refuses, naming both ways out, and writes
    nothing; with --external-injector it registers the binding and leaves the gates alone."""
    with pytest.raises(PreconditionError) as err:
        kvplan.plan_enable(RICH, version)
    assert "--external-injector" in str(err.value) and "network-resources-injector" in str(err.value)
    assert "before v1.10" in str(err.value)
    plan = kvplan.plan_enable(RICH, version, external_injector=True)
    assert "developerConfiguration" not in plan.patch["spec"]["configuration"]
    assert plan.patch["spec"]["configuration"]["network"]["binding"]["macvtap"] == {"domainAttachmentType": "tap"}
    listed = kv(developerConfiguration={"disabledFeatureGates": ["ExternalNetResourceInjection"]})
    assert kvplan.gates_of(listed, version).injection_on  # the listing does nothing there
    warned = kvplan.plan_enable(listed, version, external_injector=True)
    assert any("does nothing" in w for w in warned.warnings)


@pytest.mark.parametrize(("hco_obj", "expect"), [
    ({"spec": {}}, "while spec.deployment.deployNetworkResourcesInjector is not false"),
    ({"spec": {"deployment": {"deployNetworkResourcesInjector": False}}}, "deployNetworkResourcesInjector: false"),
    # read as hco.kubevirt.io/v1beta1, HCO carries the v1-only field in an annotation
    ({"metadata": {"annotations": {kvplan.HCO_V1_ONLY_ANNOTATION: '{"deployNetworkResourcesInjector": false}'}},
      "spec": {}}, "deployNetworkResourcesInjector: false"),
])
def test_from_v110_under_hyperconverged_enable_names_hcos_injector_switch(hco_obj, expect) -> None:
    """Under HCO the refusal names HCO's own switch (read, never written: `false` is HCO's documented setting where
    another injector runs) and install --injector; --external-injector proceeds and writes no injector field."""
    with pytest.raises(PreconditionError) as err:
        kvplan.plan_enable_hco(hco_obj, kv(), (1, 10, 0))
    assert expect in str(err.value) and "--external-injector" in str(err.value)
    assert "install --injector" in str(err.value)
    plan = kvplan.plan_enable_hco(hco_obj, kv(), (1, 10, 0), external_injector=True)
    assert "deployment" not in (plan.patch.get("spec") or {}) and plan.patch["spec"]["networkBinding"]


def test_hco_injector_switch_reads_the_v1_field_and_the_v1beta1_annotation() -> None:
    assert kvplan.hco_deploys_injector({"spec": {"deployment": {"deployNetworkResourcesInjector": True}}}) is True
    assert kvplan.hco_deploys_injector({"spec": {}}) is None
    bad = {"metadata": {"annotations": {kvplan.HCO_V1_ONLY_ANNOTATION: "{oops"}}}
    assert kvplan.hco_deploys_injector(bad) is None
