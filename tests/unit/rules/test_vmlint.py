"""Lint rules for macvtap VMs (pure)."""

from __future__ import annotations

import copy

from macvtapctl import vmflags
from macvtapctl.manifests import nad as nadm
from macvtapctl.manifests import vm as vmm
from macvtapctl.rules import dpconfig, vmlint


def facts(**kw) -> vmlint.Facts:
    base = vmlint.Facts(
        bindings={"macvtap": {"domainAttachmentType": "tap"}},
        nads={("default", "dp"): nadm.render("dp", "default", "dataplane")},
        exposed=dpconfig.Config(items=[{"name": "dataplane", "lowerDevice": "eth0"}]),
    )
    for k, v in kw.items():
        setattr(base, k, v)
    return base


def good_vm(name: str = "a", **opts) -> dict:
    vm = vmm.render(name, vmm.VMOptions(networks=[vmflags.network_from_nad("dp")], namespace="default",
                                        auto_mac=True, **opts))
    return vm


def checks(vm: dict, f: vmlint.Facts | None = None) -> list[str]:
    return [x.check for x in vmlint.lint(vm, f or facts())]


def ifaces(vm: dict) -> list:
    return vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]


def test_generated_vm_is_clean() -> None:
    assert checks(good_vm()) == []


def test_binding_not_registered() -> None:
    assert checks(good_vm(), facts(bindings={})) == ["binding-not-registered"]


def test_nad_missing_with_hint_for_default() -> None:
    vm = good_vm()
    vm["metadata"]["namespace"] = "team"
    found = vmlint.lint(vm, facts())
    assert [f.check for f in found] == ["nad-missing"]
    assert "default/dp" in found[0].message


def test_resource_not_exposed_and_expose_all() -> None:
    assert checks(good_vm(), facts(exposed=dpconfig.Config(items=[{"name": "x", "lowerDevice": "eth1"}]))) == [
        "resource-not-exposed"]
    assert checks(good_vm(), facts(exposed=dpconfig.Config())) == []  # [] exposes every NIC
    assert checks(good_vm(), facts(exposed=None)) == []  # unknown: not judged


def test_unmatched_interface_and_network() -> None:
    vm = good_vm()
    vm["spec"]["template"]["spec"]["networks"][1]["name"] = "other"
    assert sorted(checks(vm)) == ["unmatched-interface", "unmatched-network"]


def test_core_macvtap_is_discontinued() -> None:
    vm = good_vm()
    iface = ifaces(vm)[1]
    del iface["binding"]
    iface["macvtap"] = {}
    assert "core-macvtap" in checks(vm)


def test_default_network_and_pod_network() -> None:
    vm = good_vm()
    vm["spec"]["template"]["spec"]["networks"][1]["multus"]["default"] = True
    assert "default-network" in checks(vm)
    vm = good_vm()
    vm["spec"]["template"]["spec"]["networks"][1] = {"name": "dp", "pod": {}}
    assert "pod-network" in checks(vm)


def test_missing_mac_warns_whatever_the_eviction_strategy() -> None:
    """It is the target macvtap that gets a random MAC, not the guest (issue 39); and a VM migrates without a
    drain too (virtctl migrate, KubeVirt's LiveMigrate workload updates), so evictionStrategy None does not
    silence it."""
    vm = vmm.render("a", vmm.VMOptions(networks=[vmflags.network_from_nad("dp")], namespace="default"))
    found = vmlint.lint(vm, facts())
    assert [(f.severity, f.check) for f in found] == [("warning", "no-mac")]
    assert "the macvtap on the target node gets a new random MAC while the guest keeps its own" in found[0].message
    vm["spec"]["template"]["spec"]["evictionStrategy"] = "None"
    assert checks(vm) == ["no-mac"]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1]["macAddress"] = "02:00:00:00:00:01"
    assert checks(vm) == []


def test_duplicate_mac_on_the_same_network() -> None:
    f = facts()
    a = good_vm("a")
    b = copy.deepcopy(a)
    b["metadata"]["name"] = "b"
    vmlint.record_macs(a, f)
    assert checks(a, f) == []  # its own MAC is not a duplicate
    assert checks(b, f) == ["duplicate-mac"]


def test_multicast_mac() -> None:
    vm = good_vm()
    ifaces(vm)[1]["macAddress"] = "01:00:5e:00:00:01"
    assert checks(vm) == ["mac"]


def test_uses_macvtap() -> None:
    assert vmlint.uses_macvtap(good_vm(), facts())
    plain = good_vm()
    plain["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", "masquerade": {}}]
    plain["spec"]["template"]["spec"]["networks"] = [{"name": "default", "pod": {}}]
    assert not vmlint.uses_macvtap(plain, facts())


def test_the_same_mac_on_two_interfaces_of_one_vm() -> None:
    nets = [vmflags.network_from_nad("dp"), vmflags.network_from_nad("two=dp")]
    vm = vmm.render("a", vmm.VMOptions(networks=nets, namespace="default",
                                       macs={"dp": "02:00:00:00:00:01", "two": "02-00-00-00-00-01"}))
    found = [f for f in vmlint.lint(vm, facts()) if f.check == "duplicate-mac"]
    assert [(f.field, f.message) for f in found] == [
        ("spec.template.spec.domain.devices.interfaces[2].macAddress",
         "MAC 02:00:00:00:00:01 is on interfaces 'dp' and 'two' of this VM")]
    ifaces(vm)[2]["macAddress"] = "02:00:00:00:00:02"
    assert "duplicate-mac" not in checks(vm)


def test_every_doctor_id_is_documented() -> None:
    """docs/doctor.md names every finding id doctor can emit (ids are a public, allow-listable interface)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    rules = root / "macvtapctl" / "rules"
    src = "".join(p.read_text() for p in sorted([*rules.glob("doctor.py"), *rules.glob("doctor/*.py")]))
    ids = set(re.findall(r'Finding\("([a-z0-9-]+)"', src))
    ids |= set(re.findall(r'"([a-z0-9-]+)": (?:ERROR|WARNING)', src))  # node report ids
    ids |= set(re.findall(r'"(workload-[a-z-]+)"', src))  # rule 13 names its ids in _explain
    lint = (rules / "vmlint.py").read_text()
    ids |= {f"vm-{c}" for c in re.findall(r'Finding\((?:ERROR|WARNING), "([a-z-]+)"', lint)}
    doc = (root / "docs" / "doctor.md").read_text()
    assert len(ids) > 30
    assert sorted(i for i in ids if f"`{i}`" not in doc) == []
