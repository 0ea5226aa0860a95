"""vm create's flag rules (vmflags): each flag's forms, its errors, the rules across flags, a batch's names."""

from __future__ import annotations

import ipaddress

import pytest

from macvtapctl import vmflags
from macvtapctl.errors import UsageError
from macvtapctl.manifests import vm as vmm


@pytest.mark.parametrize(("ref", "name", "nad"), [
    ("dataplane", "dataplane", "dataplane"), ("default/dp", "dp", "default/dp"),
    ("lan=infra/dp.v1", "lan", "infra/dp.v1"), ("dp.v1", "dp-v1", "dp.v1"),
])
def test_network_flag_forms(ref: str, name: str, nad: str) -> None:
    assert vmflags.network_from_nad(ref) == vmm.Network(name, nad)


@pytest.mark.parametrize(("ref", "needle"), [
    ("Bad", "DNS-1123"), ("ns/Bad", "DNS-1123"), ("Bad_NS/x", "DNS-1123"), ("default=x", "reserved"),
    ("a.b=x", "network name"),
])
def test_bad_network_flags(ref: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        vmflags.network_from_nad(ref)


@pytest.mark.parametrize(("value", "needle"), [
    ("dp", "NET=CIDR"), ("dp=10.0.0.1", "prefix length"), ("dp=300.0.0.1/24", "not an address"),
    ("dp=10.0.0.5/24,10.0.1.1", "not in 10.0.0.0/24"), ("dp=10.0.0.5/24,gw", "not an IP"),
])
def test_bad_ip(value: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        vmflags.parse_ip(value)


def test_ipv6_static() -> None:
    _net, ip = vmflags.parse_ip("dp=2001:db8::10/64,2001:db8::1")
    assert ip.address == ipaddress.ip_interface("2001:db8::10/64")


def test_cross_flag_rules() -> None:
    nets = [vmflags.network_from_nad("dp")]
    with pytest.raises(UsageError, match="used twice"):
        vmflags.check_options(vmm.VMOptions(networks=nets * 2))
    with pytest.raises(UsageError, match="--ip names network 'other'"):
        vmflags.check_options(vmm.VMOptions(networks=nets, ips={"other": vmflags.parse_ip("x=10.0.0.1/24")[1]}))
    with pytest.raises(UsageError, match="no NIC"):
        vmflags.check_options(vmm.VMOptions(pod_network=False))
    with pytest.raises(UsageError, match="--run-strategy"):
        vmflags.check_options(vmm.VMOptions(networks=nets, run_strategy="Sometimes"))
    with pytest.raises(UsageError, match="--memory"):
        vmflags.check_options(vmm.VMOptions(networks=nets, memory="lots"))
    with pytest.raises(UsageError, match="label key"):
        vmflags.check_options(vmm.VMOptions(networks=nets, labels={"bad key": "x"}))


@pytest.mark.parametrize("user", ["root\nruncmd: [reboot]", "Fedora", "a b", "", "x" * 33, "1user", "us:er"])
def test_a_user_that_is_not_a_linux_user_name_is_refused_not_injected(user: str) -> None:
    """Issue 13.13: `--user $'root\\nruncmd: [...]'` used to add keys to the cloud-config."""
    with pytest.raises(UsageError, match="invalid --user"):
        vmflags.check_options(vmm.VMOptions(user=user))


def test_batch_names() -> None:
    assert vmflags.names_for("web", 1, None) == ["web"]
    assert vmflags.names_for("web", 3, None) == ["web-1", "web-2", "web-3"]
    assert vmflags.names_for("x", 2, "db-{i}-a") == ["db-1-a", "db-2-a"]
    with pytest.raises(UsageError, match=r"\{i\}"):
        vmflags.names_for("x", 2, "db")
    with pytest.raises(UsageError, match="--count 0"):
        vmflags.names_for("x", 0, None)
    with pytest.raises(UsageError, match="VM name"):
        vmflags.names_for("x", 2, "DB-{i}")


def test_node_and_node_selector_become_the_vmis_node_selector() -> None:
    assert vmflags.node_selector("node-b", ["zone=a", "disk=ssd"]) == {
        "zone": "a", "disk": "ssd", "kubernetes.io/hostname": "node-b"}
    assert vmflags.node_selector(None, []) == {}
    assert vmflags.node_selector("node-b", ["kubernetes.io/hostname=node-b"]) == {"kubernetes.io/hostname": "node-b"}


@pytest.mark.parametrize(("node", "selectors", "message"), [
    ("Node_B", [], 'invalid --node "Node_B": must be a DNS-1123 subdomain'),
    ("a", ["kubernetes.io/hostname=b"], '--node "a" contradicts --node-selector kubernetes.io/hostname=b'),
    (None, ["zone"], 'invalid --node-selector "zone": expected KEY=VALUE'),
    (None, ["zone=a b"], 'invalid label value "a b" for "zone"'),
    ("n" * 64, [], "longer than 63 characters"),
])
def test_bad_node_flags_are_one_line_naming_the_value(node: str | None, selectors: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        vmflags.node_selector(node, selectors)
    assert str(err.value).startswith(message) or message in str(err.value)


def test_the_rendered_vm_carries_the_node_selector() -> None:
    from macvtapctl.manifests import vm as vmm

    opts = vmm.VMOptions(networks=[vmflags.network_from_nad("dp")], node_selector={"kubernetes.io/hostname": "b"})
    assert vmm.render("web", opts)["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "b"}
    assert "nodeSelector" not in vmm.render("web", vmm.VMOptions())["spec"]["template"]["spec"]
