"""The VirtualMachine renderer: shape, MACs and cloud-init (pure; the flag rules are test_vmflags.py)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from macvtapctl import validate, vmflags
from macvtapctl.errors import UsageError
from macvtapctl.manifests import vm as vmm


def spec(vm: dict) -> dict:
    return vm["spec"]["template"]["spec"]


def test_default_shape_matches_the_seed_example() -> None:
    vm = vmm.render("web", vmm.VMOptions(networks=[vmflags.network_from_nad("dataplane")]))
    assert vm["apiVersion"] == "kubevirt.io/v1" and vm["kind"] == "VirtualMachine"
    assert vm["metadata"] == {"name": "web"}  # no namespace unless -n was given
    s = spec(vm)
    assert s["domain"]["devices"]["interfaces"] == [
        {"name": "default", "masquerade": {}},
        {"name": "dataplane", "binding": {"name": "macvtap"}},
    ]
    assert s["networks"] == [{"name": "default", "pod": {}},
                             {"name": "dataplane", "multus": {"networkName": "dataplane"}}]
    assert s["volumes"][0] == {"name": "containerdisk", "containerDisk": {"image": vmm.DEFAULT_IMAGE}}
    net = yaml.safe_load(s["volumes"][1]["cloudInitNoCloud"]["networkData"])
    assert net == {"version": 2, "ethernets": {"all": {"match": {"name": "e*"}, "dhcp4": True}}}
    assert vm["spec"]["runStrategy"] == "Always"
    assert "evictionStrategy" not in s  # unset: the cluster's default decides


def test_eviction_strategy_is_the_vmis() -> None:
    """--eviction-strategy lands where KubeVirt's eviction webhook reads it: the VMI's spec (the template's)."""
    vm = vmm.render("web", vmm.VMOptions(networks=[vmflags.network_from_nad("dataplane")],
                                         eviction_strategy="LiveMigrate"))
    assert spec(vm)["evictionStrategy"] == "LiveMigrate" and "evictionStrategy" not in vm["spec"]


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=20))
def test_derived_mac_is_stable_unicast_and_local(ns: str, vm: str, net: str) -> None:
    mac = vmm.derived_mac(ns, vm, net)
    assert mac == vmm.derived_mac(ns, vm, net)
    first = int(mac[:2], 16)
    assert first & 0x01 == 0  # unicast
    assert first & 0x02 == 2  # locally administered
    assert validate.check_unicast_mac(mac) == mac


def test_derived_macs_differ_per_network_and_vm() -> None:
    macs = {vmm.derived_mac("ns", v, n) for v in ("a", "b") for n in ("x", "y")}
    assert len(macs) == 4


@given(st.binary(min_size=6, max_size=6), st.sampled_from([":", "-"]), st.booleans())
def test_mac_validation(raw: bytes, sep: str, upper: bool) -> None:
    text = sep.join(f"{b:02x}" for b in raw)
    text = text.upper() if upper else text
    canonical = ":".join(f"{b:02x}" for b in raw)
    if raw[0] & 1 or raw == b"\0" * 6:
        with pytest.raises(UsageError):
            validate.check_unicast_mac(text)
    else:
        assert validate.check_unicast_mac(text) == canonical


@pytest.mark.parametrize("bad", ["02:00:00:00:00", "02:00:00:00:00:00:00", "02:00-00:00:00:00", "zz:00:00:00:00:00"])
def test_malformed_macs(bad: str) -> None:
    with pytest.raises(UsageError, match=f'"{bad}"'):
        validate.check_unicast_mac(bad)


def test_static_ip_derives_a_mac_to_match_the_nic() -> None:
    net, ip = vmflags.parse_ip("dataplane=192.0.2.10/24,192.0.2.1")
    opts = vmm.VMOptions(networks=[vmflags.network_from_nad("dataplane")], ips={net: ip}, namespace="prod")
    vm = vmm.render("db", opts)
    iface = spec(vm)["domain"]["devices"]["interfaces"][1]
    assert iface["macAddress"] == vmm.derived_mac("prod", "db", "dataplane")
    data = yaml.safe_load(spec(vm)["volumes"][1]["cloudInitNoCloud"]["networkData"])
    assert data["ethernets"]["dataplane"] == {
        "match": {"macaddress": iface["macAddress"]}, "addresses": ["192.0.2.10/24"],
        "routes": [{"to": "default", "via": "192.0.2.1", "metric": 200}]}
    assert data["ethernets"]["default"]["dhcp4"] is True


def test_explicit_mac_and_rerender_is_identical() -> None:
    opts = vmm.VMOptions(networks=[vmflags.network_from_nad("dp")], auto_mac=True)
    assert vmm.render("a", opts) == vmm.render("a", opts)
    opts = vmm.VMOptions(networks=[vmflags.network_from_nad("dp")], macs={"dp": "02:00:00:00:00:01"})
    assert spec(vmm.render("a", opts))["domain"]["devices"]["interfaces"][1]["macAddress"] == "02:00:00:00:00:01"


def test_no_pod_network() -> None:
    vm = vmm.render("a", vmm.VMOptions(networks=[vmflags.network_from_nad("dp")], pod_network=False, auto_mac=True))
    s = spec(vm)
    assert [i["name"] for i in s["domain"]["devices"]["interfaces"]] == ["dp"]
    assert s["networks"] == [{"name": "dp", "multus": {"networkName": "dp"}}]
    assert "default" not in yaml.safe_load(s["volumes"][1]["cloudInitNoCloud"]["networkData"])["ethernets"]


def test_user_data() -> None:
    opts = vmm.VMOptions(user="fedora", password='p"w', ssh_keys=["ssh-ed25519 AAAA k"])
    ud = spec(vmm.render("a", opts))["volumes"][1]["cloudInitNoCloud"]["userData"]
    assert ud.startswith("#cloud-config\n")
    assert yaml.safe_load(ud) == {"user": "fedora", "password": 'p"w', "chpasswd": {"expire": False},
                                  "ssh_authorized_keys": ["ssh-ed25519 AAAA k"]}


@pytest.mark.parametrize("text", ["p\nruncmd: [reboot]", "- x", "yes", "0x10", "a: b", "#c", "~", " lead", "é\u2028x"])
def test_user_data_strings_stay_strings_whatever_they_contain(text: str) -> None:
    """yamlout quotes what YAML would read as something else: a password or a key is one string, never keys."""
    opts = vmm.VMOptions(password=text, ssh_keys=[text], ga_manage_ssh=True)
    ud = spec(vmm.render("a", opts))["volumes"][1]["cloudInitNoCloud"]["userData"]
    assert ud.startswith("#cloud-config\n")
    assert yaml.safe_load(ud) == {"password": text, "chpasswd": {"expire": False}, "ssh_authorized_keys": [text],
                                  "runcmd": [["setsebool", "-P", "virt_qemu_ga_manage_ssh", "on"]]}
